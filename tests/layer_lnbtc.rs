//! The layer's `lnbtc` flow (x402 version 2, PROTOCOL.md Part 2): the demo app behind the demo
//! prices with both flows, served over real HTTP, paid through the mock facilitator over real
//! HTTP, the client checking every challenge as the scheme says before paying it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::hashes::{Hash as _, sha256};
use common::{
    INFER_MSAT, WEATHER_MSAT, demo_app, demo_prices, facilitator_for, pay_invoice, serve,
};
use http::StatusCode;
use serde_json::{Value, json};
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::{decode_payment_required, decode_payment_response};
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::lnbtc::reason;
use x402_lightning::lnbtc::types::{PaymentRequired, SettleResponse};
use x402_lightning::mock::{Fault, MockFacilitator, TestWallet};
use x402_lightning::{
    ConfigError, FacilitatorCall, Flows, HttpFacilitator, Network, Price, PriceTag, X402Layer,
};

/// What the scheme's headers are called on the wire (the harness never uses the crate's
/// constants for them, so these tests check the names too).
const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";

/// The demo app with both flows, bound to its own loopback origin.
struct Shop {
    mock: MockFacilitator,
    wallet: TestWallet,
    addr: SocketAddr,
    client: reqwest::Client,
    runs: Arc<AtomicUsize>,
}

async fn open_shop() -> Shop {
    open_shop_with(|prices| prices).await
}

async fn open_shop_with(
    configure: impl FnOnce(
        x402_lightning::layer::X402LayerBuilder<HttpFacilitator>,
    ) -> x402_lightning::layer::X402LayerBuilder<HttpFacilitator>,
) -> Shop {
    let mock = MockFacilitator::start().await.expect("mock starts");
    // The origin must be known before the layer is built: take a port, then serve on it.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", probe.local_addr().expect("addr"));
    drop(probe);
    let layer = configure(
        demo_prices(facilitator_for(&mock), mock.network())
            .pay_to(mock.pay_to())
            .public_base_url(&origin),
    )
    .build()
    .expect("layer builds");
    let runs = Arc::new(AtomicUsize::new(0));
    let app = demo_app(Arc::clone(&runs)).layer(layer);
    let addr = serve_at(&origin, app).await;
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), 1_000_000_000);
    Shop {
        mock,
        wallet,
        addr,
        client: reqwest::Client::new(),
        runs,
    }
}

/// Serves `app` at `origin`'s port (a port just released by a probe), or anywhere if it was
/// taken meanwhile (the test then fails on its origin check, loudly).
async fn serve_at(origin: &str, app: axum::Router) -> SocketAddr {
    let addr: SocketAddr = origin
        .trim_start_matches("http://")
        .parse()
        .expect("origin addr");
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tokio::spawn(async move {
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                let _ = axum::serve(listener, app).await;
            });
            addr
        }
        Err(_) => serve(app).await,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

impl Shop {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    async fn get(&self, path: &str, proof: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(proof) = proof {
            request = request.header(PAYMENT_SIGNATURE, proof);
        }
        request.send().await.expect("request sent")
    }

    async fn post_json(&self, path: &str, body: &str, proof: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(proof) = proof {
            request = request.header(PAYMENT_SIGNATURE, proof);
        }
        request.send().await.expect("request sent")
    }

    /// The challenge of a fresh 402 for `GET path`.
    async fn challenge(&self, path: &str) -> PaymentRequired {
        challenge_of(&self.get(path, None).await)
    }

    /// A `PAYMENT-SIGNATURE` paying a fresh challenge of `GET path`, checked as a client must.
    async fn proof_for(&self, path: &str) -> String {
        let required = self.challenge(path).await;
        let url = self.url(path);
        let intended = IntendedRequest::Http {
            method: "GET",
            url: &url,
            body: b"",
            header_lines: &[],
        };
        self.wallet
            .pay_lnbtc(&self.mock, &required, &intended, now())
            .expect("the challenge passes the client's checks and is paid")
    }
}

fn challenge_of(response: &reqwest::Response) -> PaymentRequired {
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let header = response
        .headers()
        .get(PAYMENT_REQUIRED)
        .expect("a PAYMENT-REQUIRED header");
    decode_payment_required(header.as_bytes(), 64 * 1024).expect("decodable challenge")
}

fn settlement_of(response: &reqwest::Response) -> Option<SettleResponse> {
    let header = response.headers().get(PAYMENT_RESPONSE)?;
    Some(decode_payment_response(header.as_bytes(), 64 * 1024).expect("decodable"))
}

async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("JSON body");
    body["error"].as_str().expect("an error").to_owned()
}

#[tokio::test]
async fn a_402_offers_one_invoice_in_both_flows_bound_to_the_request() {
    let shop = open_shop().await;
    let response = shop.get("/weather?city=paris", None).await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii");
    assert!(exposed.contains("PAYMENT-REQUIRED"), "{exposed}");
    let required = challenge_of(&response);
    let body: Value = response.json().await.expect("v1 body");

    assert_eq!(required.x402_version, 2);
    assert_eq!(required.resource.url, shop.url("/weather?city=paris"));
    assert_eq!(
        required.resource.description.as_deref(),
        Some("Current weather")
    );
    assert_eq!(required.accepts.len(), 1);
    let offer = &required.accepts[0];
    assert_eq!(offer.scheme, "exact");
    assert_eq!(offer.network, "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328");
    assert_eq!(offer.amount, WEATHER_MSAT.to_string());
    assert_eq!(offer.asset, "BTC");
    assert_eq!(offer.pay_to, shop.mock.pay_to().to_string());
    assert_eq!(offer.max_timeout_seconds, 60);
    assert_eq!(offer.extra["assetTransferMethod"], "bolt11");
    assert_eq!(offer.extra["paymentFlow"], "upfront");
    assert_eq!(offer.extra["requestBindingProfile"], "http:1");
    assert_eq!(
        offer.extra["requestBindingParams"],
        json!({ "headers": [] })
    );

    // The v1 body carries the very same invoice: one mint per challenge.
    assert_eq!(body["x402Version"], 1);
    assert_eq!(
        body["accepts"][0]["extra"]["invoice"],
        offer.extra["invoice"]
    );
    assert_eq!(shop.mock.call_count(FacilitatorCall::Requirements), 1);

    // The invoice commits to the request: its description hash is the request hash, which is
    // SHA-256 of the canonical http:1 description of this very request.
    let invoice = decode(offer.invoice().expect("invoice")).expect("decodes strictly");
    let empty_body = sha256::Hash::hash(b"").to_string();
    let description = format!(
        r#"{{"bodyHash":"{empty_body}","domain":"x402:exact:lnbtc:bolt11:http:1","headers":[],"method":"GET","url":"{}"}}"#,
        shop.url("/weather?city=paris")
    );
    let request_hash = sha256::Hash::hash(description.as_bytes()).to_byte_array();
    assert_eq!(invoice.description_hash, Some(request_hash));
    assert_eq!(offer.request_hash(), Some(hex(&request_hash).as_str()));
    assert_eq!(invoice.expiry_secs, 60);
    assert_eq!(invoice.amount_msat, Some(WEATHER_MSAT));
    assert_eq!(invoice.payee, shop.mock.pay_to());
}

#[tokio::test]
async fn a_paid_proof_is_settled_upfront_served_once_and_never_again() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather").await;
    let paid = shop.get("/weather", Some(&proof)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(paid.headers()["cache-control"], "private, no-store");
    let settlement = settlement_of(&paid).expect("PAYMENT-RESPONSE");
    assert!(settlement.success);
    assert_eq!(settlement.network, Network::Regtest.lnbtc_id());
    assert_eq!(settlement.payer, None);
    let body: Value = paid.json().await.expect("weather");
    assert_eq!(body["paymentHash"], settlement.transaction.as_str());
    assert_eq!(body["amountMsat"], WEATHER_MSAT);
    assert_eq!(body["settled"], true);
    assert_eq!(shop.runs(), 1);
    // Upfront: `/settle` only, never `/verify`.
    assert_eq!(shop.mock.call_count(FacilitatorCall::Verify), 0);
    assert_eq!(shop.mock.call_count(FacilitatorCall::Settle), 1);

    let again = shop.get("/weather", Some(&proof)).await;
    assert_eq!(again.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(
        again.headers().contains_key(PAYMENT_REQUIRED),
        "a fresh challenge"
    );
    assert_eq!(error_of(again).await, reason::DUPLICATE_SETTLEMENT);
    assert_eq!(shop.runs(), 1);
}

#[tokio::test]
async fn a_layer_that_forgot_a_proof_is_refused_by_the_facilitators_replay_set() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather").await;
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::OK
    );

    // A second server on the same facilitator (or this one after a restart).
    let layer = demo_prices(facilitator_for(&shop.mock), Network::Regtest)
        .pay_to(shop.mock.pay_to())
        .public_base_url(format!("http://{}", shop.addr))
        .build()
        .expect("layer");
    let runs = Arc::new(AtomicUsize::new(0));
    let twin = serve(demo_app(Arc::clone(&runs)).layer(layer)).await;
    let replay = shop
        .client
        .get(format!("http://{twin}/weather"))
        .header("host", shop.addr.to_string())
        .header(PAYMENT_SIGNATURE, &proof)
        .send()
        .await
        .expect("sent");
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    let settlement = settlement_of(&replay).expect("the failed settlement is shown");
    assert!(!settlement.success);
    assert_eq!(
        settlement.error_reason.as_deref(),
        Some(reason::DUPLICATE_SETTLEMENT)
    );
    assert_eq!(error_of(replay).await, reason::DUPLICATE_SETTLEMENT);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_proof_for_one_request_never_buys_another() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather?city=paris").await;
    let settles = shop.mock.call_count(FacilitatorCall::Settle);

    let other = shop.get("/weather?city=rome", Some(&proof)).await;
    assert_eq!(error_of(other).await, reason::REQUEST_MISMATCH);
    // Query order is part of the request.
    let proof = shop.proof_for("/weather?a=1&b=2").await;
    let reordered = shop.get("/weather?b=2&a=1", Some(&proof)).await;
    assert_eq!(error_of(reordered).await, reason::REQUEST_MISMATCH);
    assert_eq!(
        shop.mock.call_count(FacilitatorCall::Settle),
        settles,
        "no settle"
    );
    assert_eq!(shop.runs(), 0);

    // The untouched proof still buys its own request.
    let own = shop.get("/weather?a=1&b=2", Some(&proof)).await;
    assert_eq!(own.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_post_is_bound_to_its_body_bytes_and_its_content_type() {
    let shop = open_shop().await;
    let body = r#"{"prompt":"hello lightning"}"#;
    let response = shop.post_json("/ai/infer", body, None).await;
    let required = challenge_of(&response);
    assert_eq!(
        required.accepts[0].extra["requestBindingParams"],
        json!({ "headers": ["content-type"] })
    );
    let url = shop.url("/ai/infer");
    let lines: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
    let intended = IntendedRequest::Http {
        method: "POST",
        url: &url,
        body: body.as_bytes(),
        header_lines: &lines,
    };
    let proof = shop
        .wallet
        .pay_lnbtc(&shop.mock, &required, &intended, now())
        .expect("paid");

    // Same JSON value, other bytes: another request.
    let spaced = shop
        .post_json(
            "/ai/infer",
            r#"{"prompt": "hello lightning"}"#,
            Some(&proof),
        )
        .await;
    assert_eq!(error_of(spaced).await, reason::REQUEST_MISMATCH);
    // Same bytes, another content type (JSON still, or the route's check would refuse it
    // first): another request.
    let with_charset = shop
        .client
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .header(PAYMENT_SIGNATURE, &proof)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(error_of(with_charset).await, reason::REQUEST_MISMATCH);
    assert_eq!(shop.runs(), 0);

    // The bytes paid for reach the handler.
    let paid = shop.post_json("/ai/infer", body, Some(&proof)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    let answer: Value = paid.json().await.expect("json");
    assert_eq!(answer["completion"], "hello lightning");
    let settlement = shop
        .mock
        .calls_to(FacilitatorCall::Settle)
        .remove(0)
        .request();
    assert_eq!(
        settlement["paymentRequirements"]["amount"],
        INFER_MSAT.to_string()
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_mints_nothing() {
    let shop = open_shop_with(|prices| prices.max_body_bytes(1024)).await;
    let big = "x".repeat(1025);
    let response = shop.post_json("/ai/infer", &big, None).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_of(response).await.contains("1024 bytes"));
    // A chunked body (no Content-Length) over the limit too.
    assert_eq!(chunked_post(shop.addr, "/ai/infer", &big).await, "413");
    assert_eq!(shop.mock.call_count(FacilitatorCall::Requirements), 0);
    // Free routes are not read.
    let free = shop.client.get(shop.url("/")).send().await.expect("sent");
    assert_eq!(free.status(), StatusCode::OK);
}

/// The status code of a raw HTTP/1.1 POST of `body` in 100-byte chunks, without
/// `Content-Length`.
async fn chunked_post(addr: SocketAddr, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(100) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn one_proof_raced_by_16_requests_is_served_once() {
    let shop = Arc::new(open_shop().await);
    let proof = Arc::new(shop.proof_for("/weather").await);
    let mut racers = Vec::new();
    for _ in 0..16 {
        let (shop, proof) = (Arc::clone(&shop), Arc::clone(&proof));
        racers.push(tokio::spawn(async move {
            shop.get("/weather", Some(&proof)).await.status()
        }));
    }
    let mut served = 0;
    for racer in racers {
        let status = racer.await.expect("racer");
        match status {
            StatusCode::OK => served += 1,
            StatusCode::CONFLICT | StatusCode::PAYMENT_REQUIRED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(served, 1);
    assert_eq!(shop.runs(), 1);
}

/// A `PAYMENT-SIGNATURE` that is not a usable payment for the route: 400 (upstream transport's
/// "Invalid Payment") with the vocabulary's reason, `no-store`, and no fresh invoice: a client
/// that already paid is not invited to pay again.
async fn assert_invalid_payment(response: reqwest::Response, reason: &str, detail: &str) {
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "{reason}: {detail}"
    );
    assert!(
        !response.headers().contains_key(PAYMENT_REQUIRED),
        "{detail}"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["reason"], reason, "{body}");
    let error = body["error"].as_str().expect("an error");
    assert!(
        error.starts_with("Invalid or malformed payment header"),
        "{error}"
    );
    assert!(error.contains(detail), "{error} should say {detail}");
}

#[tokio::test]
async fn malformed_proofs_get_a_400_with_the_reason_and_no_invoice() {
    let shop = open_shop().await;
    shop.mock.clear_calls();
    for (proof, reason, detail) in [
        ("%%%", "invalid_payload", "not valid base64"),
        ("bm90IGpzb24", "invalid_payload", "not a valid payment JSON"),
        // []
        ("W10", "invalid_payload", "expected a JSON object"),
        // {"x402Version":1}
        (
            "eyJ4NDAyVmVyc2lvbiI6MX0",
            "invalid_x402_version",
            "x402Version 1",
        ),
        // {"accepted":{}}
        ("eyJhY2NlcHRlZCI6e319", "invalid_x402_version", "(absent)"),
    ] {
        let response = shop.get("/weather", Some(proof)).await;
        assert_invalid_payment(response, reason, detail).await;
    }
    let oversized = "A".repeat(9000);
    let response = shop.get("/weather", Some(&oversized)).await;
    assert_invalid_payment(response, "invalid_payload", "over the limit").await;
    let twice = shop
        .client
        .get(shop.url("/weather"))
        .header(PAYMENT_SIGNATURE, "e30")
        .header(PAYMENT_SIGNATURE, "e30")
        .send()
        .await
        .expect("sent");
    assert_invalid_payment(twice, "invalid_payload", "more than one").await;
    // Nothing minted, nothing settled, nothing served.
    for call in [
        FacilitatorCall::Requirements,
        FacilitatorCall::Verify,
        FacilitatorCall::Settle,
    ] {
        assert_eq!(shop.mock.call_count(call), 0, "{call}");
    }
    assert_eq!(shop.runs(), 0);
}

#[tokio::test]
async fn another_network_or_scheme_is_not_offered() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather").await;
    shop.mock.clear_calls();
    for (field, value, reason) in [
        (
            "network",
            "lnbtc:000000000019d6689c085ae165831e93",
            "network_mismatch",
        ),
        ("scheme", "upto", "unsupported_scheme"),
    ] {
        let mut payment = decode_signature(&proof);
        payment["accepted"][field] = json!(value);
        let response = shop.get("/weather", Some(&encode(&payment))).await;
        assert_invalid_payment(response, reason, "is not offered here").await;
    }
    assert_eq!(shop.mock.call_count(FacilitatorCall::Requirements), 0);
    assert_eq!(shop.mock.call_count(FacilitatorCall::Settle), 0);
    // The proof itself is still good.
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_v2_payment_on_a_route_without_lnbtc_is_a_400() {
    let shop = open_shop_with(|prices| prices.flows(Flows::V1)).await;
    let response = shop.get("/weather", Some("e30")).await;
    assert_invalid_payment(
        response,
        "invalid_x402_version",
        "X-PAYMENT (x402 version 1) only",
    )
    .await;
    assert_eq!(shop.mock.call_count(FacilitatorCall::Requirements), 0);
}

#[tokio::test]
async fn the_schemes_checks_refuse_tampered_proofs_with_upstream_reasons() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather").await;
    let tamper = |edit: &dyn Fn(&mut Value)| {
        let mut payment = decode_signature(&proof);
        edit(&mut payment);
        encode(&payment)
    };
    let cases: [(&str, String); 5] = [
        (
            reason::PREIMAGE_HASH_MISMATCH,
            tamper(&|p| p["payload"]["preimage"] = json!("00".repeat(32))),
        ),
        (
            reason::PREIMAGE_MALFORMED,
            tamper(&|p| p["payload"]["preimage"] = json!("ZZ".repeat(32))),
        ),
        (
            reason::AMOUNT_MISMATCH,
            tamper(&|p| p["accepted"]["amount"] = json!("1")),
        ),
        (
            reason::PAY_TO_MISMATCH,
            tamper(&|p| p["accepted"]["payTo"] = json!(TestWallet::random().id())),
        ),
        (
            reason::PAYMENT_FLOW,
            tamper(&|p| p["accepted"]["extra"]["paymentFlow"] = json!("deferred")),
        ),
    ];
    for (expected, proof) in cases {
        let response = shop.get("/weather", Some(&proof)).await;
        assert!(response.headers().contains_key(PAYMENT_REQUIRED));
        assert_eq!(error_of(response).await, expected);
    }
    assert_eq!(shop.mock.call_count(FacilitatorCall::Settle), 0);
    // None of them spent the proof.
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_invoice_paid_through_one_flow_is_never_served_through_the_other() {
    let shop = open_shop().await;
    // Paid over Lightning, sent as lnbtc: the seed flow cannot have it again.
    let required = shop.challenge("/weather").await;
    let invoice = required.accepts[0].invoice().expect("invoice").to_owned();
    let url = shop.url("/weather");
    let intended = IntendedRequest::Http {
        method: "GET",
        url: &url,
        body: b"",
        header_lines: &[],
    };
    let proof = shop
        .wallet
        .pay_lnbtc(&shop.mock, &required, &intended, now())
        .expect("paid");
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::OK
    );
    let v1 = shop
        .client
        .get(&url)
        .header("X-PAYMENT", pay_invoice(&shop.wallet, &invoice))
        .send()
        .await
        .expect("sent");
    assert_eq!(v1.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(shop.runs(), 1);

    // Paid by the facilitator on an authorization: that invoice's preimage proves nothing
    // the client could have, and the invoice is settled here.
    let required = shop.challenge("/weather").await;
    let invoice = required.accepts[0].invoice().expect("invoice").to_owned();
    let v1 = shop
        .client
        .get(&url)
        .header("X-PAYMENT", pay_invoice(&shop.wallet, &invoice))
        .send()
        .await
        .expect("sent");
    assert_eq!(v1.status(), StatusCode::OK);
    assert!(shop.mock.pay_invoice(&invoice).is_err(), "already paid");
    assert_eq!(shop.runs(), 2);
}

#[tokio::test]
async fn both_payment_headers_at_once_are_refused() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather").await;
    let response = shop
        .client
        .get(shop.url("/weather"))
        .header(PAYMENT_SIGNATURE, &proof)
        .header("X-PAYMENT", "e30")
        .send()
        .await
        .expect("sent");
    let error = error_of(response).await;
    assert!(
        error.contains("both X-PAYMENT and PAYMENT-SIGNATURE"),
        "{error}"
    );
    assert_eq!(shop.runs(), 0);
}

#[tokio::test]
async fn a_foreign_authority_is_refused_and_a_consistent_one_bound_to_the_configured_origin() {
    let shop = open_shop().await;
    // The Host is another origin: the challenge still binds the configured one.
    let response = shop
        .client
        .get(shop.url("/weather"))
        .header("host", "localhost:1")
        .send()
        .await
        .expect("sent");
    let required = challenge_of(&response);
    assert_eq!(required.resource.url, shop.url("/weather"));
    // A malformed Host is refused before anything is minted.
    let mints = shop.mock.call_count(FacilitatorCall::Requirements);
    let response = shop
        .client
        .get(shop.url("/weather"))
        .header("host", "user@evil.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        error_of(response)
            .await
            .starts_with(reason::REQUEST_BINDING)
    );
    assert_eq!(shop.mock.call_count(FacilitatorCall::Requirements), mints);
}

#[tokio::test]
async fn routes_and_layers_choose_their_flows() {
    let mock = MockFacilitator::new();
    let only_v1 = X402Layer::builder(mock.clone(), mock.network())
        .pay_to(mock.pay_to())
        .flows(Flows::V1)
        .route("GET /v1", Price::sats(1))
        .route(
            "GET /lnbtc",
            PriceTag::fixed(Price::sats(1)).flows(Flows::LNBTC),
        )
        .public_base_url("http://shop.example")
        .build()
        .expect("layer");
    let app = axum::Router::new()
        .route("/v1", axum::routing::get(|| async { "v1" }))
        .route("/lnbtc", axum::routing::get(|| async { "lnbtc" }))
        .layer(only_v1);
    use tower::ServiceExt as _;
    let get = |path: &str| {
        http::Request::get(path)
            .header("host", "shop.example")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let v1 = app.clone().oneshot(get("/v1")).await.expect("infallible");
    assert_eq!(v1.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(!v1.headers().contains_key(PAYMENT_REQUIRED));
    let lnbtc = app
        .clone()
        .oneshot(get("/lnbtc"))
        .await
        .expect("infallible");
    assert!(lnbtc.headers().contains_key(PAYMENT_REQUIRED));
    let body = axum::body::to_bytes(lnbtc.into_body(), 64 * 1024)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        body["x402Version"], 2,
        "an lnbtc-only route answers the v2 challenge"
    );
    assert_eq!(body["error"], "PAYMENT-SIGNATURE header is required");

    let mut wrong = get("/lnbtc");
    wrong
        .headers_mut()
        .insert("x-payment", "e30".parse().expect("value"));
    let response = app.oneshot(wrong).await.expect("infallible");
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("PAYMENT-SIGNATURE")
    );
}

#[test]
fn the_lnbtc_flow_needs_a_public_origin_and_valid_bound_headers() {
    let mock = MockFacilitator::new();
    let without_origin = X402Layer::builder(mock.clone(), mock.network())
        .route("GET /x", Price::sats(1))
        .build();
    assert_eq!(
        without_origin.err(),
        Some(ConfigError::PublicOriginRequired)
    );
    let with_path = X402Layer::builder(mock.clone(), mock.network())
        .route("GET /x", Price::sats(1))
        .public_base_url("https://api.example.com/v1")
        .build();
    assert!(matches!(with_path, Err(ConfigError::PublicBaseUrl { .. })));
    // Names are case-insensitive: tidied for the wire, not refused.
    let untidy = X402Layer::builder(mock.clone(), mock.network())
        .route(
            "GET /x",
            PriceTag::fixed(Price::sats(1)).bind_headers(["Content-Type", "accept", "ACCEPT"]),
        )
        .public_base_url("https://api.example.com")
        .build();
    assert!(untidy.is_ok());
    for bad in ["payment-signature", "bad name", ""] {
        let refused = X402Layer::builder(mock.clone(), mock.network())
            .route(
                "GET /x",
                PriceTag::fixed(Price::sats(1)).bind_headers([bad]),
            )
            .public_base_url("https://api.example.com")
            .build();
        assert!(matches!(refused, Err(ConfigError::Route(_))), "{bad:?}");
    }
    // A configuration error prints its fix, in `Debug` too (what `main`'s `?` shows).
    assert!(format!("{:?}", ConfigError::PublicOriginRequired).contains(".public_base_url("));
    let payments = X402Layer::builder(mock.clone(), mock.network())
        .flows(Flows::V1)
        .build()
        .expect("a v1 layer needs no origin");
    assert!(matches!(
        payments.charge(PriceTag::fixed(Price::sats(1)).flows(Flows::BOTH)),
        Err(ConfigError::PublicOriginRequired)
    ));
}

#[tokio::test]
async fn a_refused_or_failed_settle_serves_nothing() {
    let shop = open_shop().await;
    let proof = shop.proof_for("/weather").await;
    shop.mock
        .fail_next(FacilitatorCall::Settle, Fault::SettleFailed("nope".into()));
    let refused = shop.get("/weather", Some(&proof)).await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        settlement_of(&refused).and_then(|s| s.error_reason),
        Some("nope".to_owned())
    );
    shop.mock.fail_next(
        FacilitatorCall::Settle,
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
    );
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::BAD_GATEWAY
    );
    shop.mock.fail_next(FacilitatorCall::Settle, Fault::Garbage);
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(shop.runs(), 0);
    // The proof was never consumed.
    assert_eq!(
        shop.get("/weather", Some(&proof)).await.status(),
        StatusCode::OK
    );
}

fn decode_signature(proof: &str) -> Value {
    x402_lightning::lnbtc::header::decode_payment_signature(proof.as_bytes(), 64 * 1024)
        .expect("decodable")
}

fn encode(payment: &Value) -> String {
    x402_lightning::header::encode_header(payment).expect("encodable")
}

fn hex(bytes: &[u8]) -> String {
    use bitcoin::hex::DisplayHex as _;
    bytes.to_lower_hex_string()
}

#[tokio::test]
async fn a_receiver_invoice_for_another_request_or_expiry_is_a_502_never_offered() {
    use x402_lightning::mock::InvoiceFault;
    let shop = open_shop().await;
    for fault in [
        InvoiceFault::WrongDescriptionHash,
        InvoiceFault::WrongExpiry,
    ] {
        shop.mock
            .fail_next(FacilitatorCall::Requirements, Fault::Invoice(fault));
        let response = shop.get("/weather", None).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{fault:?}");
        assert!(!response.headers().contains_key(PAYMENT_REQUIRED));
        let error = error_of(response).await;
        assert!(error.contains("unusable invoice"), "{fault:?}: {error}");
        assert!(
            !error.contains("lnbcrt"),
            "the invoice is not shown: {error}"
        );
    }
}

#[tokio::test]
async fn a_handler_failing_after_an_upfront_settle_keeps_its_answer_and_the_receipt() {
    let mock = MockFacilitator::new();
    let payments = X402Layer::builder(mock.clone(), mock.network())
        .pay_to(mock.pay_to())
        .public_base_url("http://shop.example")
        .route("GET /fail", Price::sats(1))
        .build()
        .expect("layer");
    let app = axum::Router::new()
        .route(
            "/fail",
            axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(payments);
    let response = pay_in_process(app, &mock, "/fail").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().contains_key(PAYMENT_RESPONSE));
}

#[tokio::test]
async fn the_handler_learns_the_payment_came_through_lnbtc_already_settled() {
    use x402_lightning::VerifiedPayment;
    use x402_lightning::layer::PaymentFlow;
    let mock = MockFacilitator::new();
    let payments = X402Layer::builder(mock.clone(), mock.network())
        .pay_to(mock.pay_to())
        .public_base_url("http://shop.example")
        .route("GET /who", Price::sats(1))
        .build()
        .expect("layer");
    let app = axum::Router::new()
        .route(
            "/who",
            axum::routing::get(|paid: VerifiedPayment| async move {
                format!(
                    "{:?} settled={} payer={:?}",
                    paid.flow, paid.settled, paid.payer
                )
            }),
        )
        .layer(payments);
    let response = pay_in_process(app, &mock, "/who").await;
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(
        &body[..],
        format!("{:?} settled=true payer=\"\"", PaymentFlow::Lnbtc).as_bytes()
    );
}

/// `GET path` on `shop.example`, paid over lnbtc through `app` (oneshot, in process): asks for
/// the challenge, pays it with a fresh wallet at `mock`, and returns the paid answer.
async fn pay_in_process(
    app: axum::Router,
    mock: &MockFacilitator,
    path: &str,
) -> http::Response<axum::body::Body> {
    use tower::ServiceExt as _;
    let request = || {
        http::Request::get(path)
            .header("host", "shop.example")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let challenge = app.clone().oneshot(request()).await.expect("infallible");
    let header = challenge.headers()[PAYMENT_REQUIRED].as_bytes().to_vec();
    let required = decode_payment_required(&header, 64 * 1024).expect("challenge");
    let url = format!("http://shop.example{path}");
    let intended = IntendedRequest::Http {
        method: "GET",
        url: &url,
        body: b"",
        header_lines: &[],
    };
    let proof = TestWallet::random()
        .pay_lnbtc(mock, &required, &intended, now())
        .expect("paid");
    let mut paid = request();
    paid.headers_mut()
        .insert(PAYMENT_SIGNATURE, proof.parse().expect("header value"));
    app.oneshot(paid).await.expect("infallible")
}
