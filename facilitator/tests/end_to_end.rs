//! A resource server running the layer against this service, with no mock anywhere: the
//! service binary settles and mints (simulated node), the layer (`X402Layer` over
//! `HttpFacilitator`) guards an axum route, and the client pays the invoice through the
//! simulated node's `POST /pay` and proves it with `PAYMENT-SIGNATURE`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde::Deserialize;
use x402_lightning::lnbtc::client::{
    ClientPolicy, IntendedRequest, PayerResult, PayerStatus, select,
};
use x402_lightning::lnbtc::header::{
    PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, decode_payment_required,
    decode_payment_response, encode_payment_signature,
};
use x402_lightning::lnbtc::types::PaymentRequired;
use x402_lightning::{Flows, HttpFacilitator, Network, Price, X402Layer};

use self::common::{Instance, sqlite_url};

const API_KEY: &str = "e2e-secret-key";

/// A resource server on a loopback port: `GET /weather` costs 10,000 msat over lnbtc.
struct Shop {
    origin: String,
    served: Arc<AtomicUsize>,
    layer: X402Layer<HttpFacilitator>,
}

/// The service binary on a fresh SQLite file in `dir`, requiring [`API_KEY`].
fn start_service(dir: &std::path::Path) -> Instance {
    start_service_with(dir, &[])
}

/// [`start_service`] with more settings (`X402_FACILITATOR_FLOWS`, …).
fn start_service_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Instance {
    let database = sqlite_url(dir);
    let mut settings = vec![
        ("X402_FACILITATOR_DATABASE_URL", database.as_str()),
        ("X402_FACILITATOR_API_KEYS", API_KEY),
    ];
    settings.extend_from_slice(env);
    Instance::start(dir, &settings)
}

/// The layer of a resource server at `origin`: `GET /weather` costs 10,000 msat over lnbtc,
/// settled by `service`.
fn weather_layer(service: &Instance, origin: &str) -> X402Layer<HttpFacilitator> {
    let facilitator = HttpFacilitator::builder(service.url(""))
        .bearer_token(API_KEY)
        .build()
        .expect("facilitator client");
    X402Layer::builder(facilitator, Network::Regtest)
        .flows(Flows::LNBTC)
        .public_base_url(origin)
        .route("GET /weather", Price::msat(10_000))
        .build()
        .expect("layer builds")
}

async fn open_shop(service: &Instance) -> Shop {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let layer = weather_layer(service, &origin);
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let app = Router::new()
        .route(
            "/weather",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "sunny" }
            }),
        )
        .layer(layer.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Shop {
        origin,
        served,
        layer,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paid {
    preimage: String,
    payment_hash: String,
    amount_msat: String,
}

/// Gets the challenge of `GET url`, checks it as a client must, pays it through the simulated
/// node and returns the `PAYMENT-SIGNATURE`.
async fn pay_for(client: &reqwest::Client, url: &str, service: &Instance) -> String {
    let challenge = client.get(url).send().await.expect("GET");
    assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
    let required: PaymentRequired = decode_payment_required(
        challenge
            .headers()
            .get(PAYMENT_REQUIRED)
            .expect("PAYMENT-REQUIRED")
            .as_bytes(),
        64 * 1024,
    )
    .expect("decodes");
    let intended = IntendedRequest::Http {
        method: "GET",
        url,
        body: b"",
        header_lines: &[],
    };
    let policy = ClientPolicy {
        networks: vec![Network::Regtest],
        ..ClientPolicy::default()
    };
    let selected = select(&required, &intended, &policy, now()).expect("a payable offer");
    let invoice = selected.requirements.invoice().expect("invoice").to_owned();
    let paid: Paid = client
        .post(service.url("/pay"))
        .json(&serde_json::json!({ "invoice": invoice }))
        .send()
        .await
        .expect("POST /pay")
        .error_for_status()
        .expect("paid")
        .json()
        .await
        .expect("JSON");
    let payment = selected
        .into_payment(&PayerResult {
            status: PayerStatus::Paid,
            invoice,
            payment_hash: paid.payment_hash,
            amount_msat: paid.amount_msat.parse().expect("msat"),
            preimage: Some(paid.preimage),
        })
        .expect("a proof");
    encode_payment_signature(&payment)
}

#[tokio::test]
async fn the_layer_takes_an_lnbtc_payment_through_the_service_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_service(dir.path());
    let shop = open_shop(&service).await;
    shop.layer
        .check_facilitator()
        .await
        .expect("the service lists exact on lnbtc regtest");
    let client = reqwest::Client::new();
    let url = format!("{}/weather", shop.origin);

    let proof = pay_for(&client, &url, &service).await;
    let paid = client
        .get(&url)
        .header(PAYMENT_SIGNATURE, &proof)
        .send()
        .await
        .expect("GET with proof");
    assert_eq!(paid.status(), StatusCode::OK);
    let settlement = decode_payment_response(
        paid.headers()
            .get(PAYMENT_RESPONSE)
            .expect("PAYMENT-RESPONSE")
            .as_bytes(),
        64 * 1024,
    )
    .expect("decodes");
    assert!(settlement.success);
    assert_eq!(settlement.network, Network::Regtest.lnbtc_id());
    assert_eq!(settlement.transaction.len(), 64);
    assert_eq!(paid.text().await.expect("body"), "sunny");
    assert_eq!(shop.served.load(Ordering::SeqCst), 1);

    let replay = client
        .get(&url)
        .header(PAYMENT_SIGNATURE, &proof)
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(shop.served.load(Ordering::SeqCst), 1, "served once");
}

#[tokio::test]
async fn a_fresh_layer_is_refused_a_spent_proof_by_the_services_replay_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_service(dir.path());
    // Two layers serving one origin (two resource-server processes behind one address): the
    // second has never seen the proof, so only the service's store can refuse it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let first = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .layer(weather_layer(&service, &origin));
    tokio::spawn(async move {
        let _ = axum::serve(listener, first).await;
    });
    let client = reqwest::Client::new();
    let url = format!("{origin}/weather");
    let proof = pay_for(&client, &url, &service).await;
    let paid = client
        .get(&url)
        .header(PAYMENT_SIGNATURE, &proof)
        .send()
        .await
        .expect("GET");
    assert_eq!(paid.status(), StatusCode::OK);

    // The second process: the same request, answered in process by a fresh layer that learnt
    // the service's payee at start-up.
    let layer = weather_layer(&service, &origin);
    layer
        .check_facilitator()
        .await
        .expect("the service serves lnbtc");
    let second = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .layer(layer);
    let request = axum::http::Request::get(&url)
        .header("host", origin.trim_start_matches("http://"))
        .header(PAYMENT_SIGNATURE, &proof)
        .body(axum::body::Body::empty())
        .expect("request");
    let replay = tower::ServiceExt::oneshot(second, request)
        .await
        .expect("infallible");
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    let body = axum::body::to_bytes(replay.into_body(), 64 * 1024)
        .await
        .expect("body");
    let error: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(error["error"], "duplicate_settlement", "{error}");
}

#[tokio::test]
async fn a_layer_offering_both_flows_offers_only_lnbtc_and_is_paid_through_the_service() {
    // The README's app (both flows by default, payTo not pinned) against a service told to
    // serve lnbtc alone (X402_FACILITATOR_FLOWS=lnbtc): the start-up check says so, and the
    // layer offers lnbtc only, with the node it learned from that kind, and takes the payment.
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_service_with(dir.path(), &[("X402_FACILITATOR_FLOWS", "lnbtc")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let facilitator = HttpFacilitator::builder(service.url(""))
        .bearer_token(API_KEY)
        .build()
        .expect("facilitator client");
    let layer = X402Layer::builder(facilitator, Network::Regtest)
        .public_base_url(&origin)
        .route("GET /weather", Price::msat(10_000))
        .build()
        .expect("layer builds");
    let err = layer
        .check_facilitator()
        .await
        .expect_err("the seed flow's kind is not listed");
    assert!(
        err.to_string()
            .contains("does not serve the flow v1 on lightning-regtest (it serves lnbtc"),
        "{err}"
    );
    assert_eq!(layer.offered_flows(), Flows::LNBTC);
    let app = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .layer(layer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let client = reqwest::Client::new();
    let url = format!("{origin}/weather");
    let challenge = client.get(&url).send().await.expect("GET");
    assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(challenge.headers().contains_key(PAYMENT_REQUIRED));
    let body: serde_json::Value = challenge.json().await.expect("JSON");
    assert_eq!(body["x402Version"], 2, "no seed-flow offer: {body}");

    let proof = pay_for(&client, &url, &service).await;
    let paid = client
        .get(&url)
        .header(PAYMENT_SIGNATURE, &proof)
        .send()
        .await
        .expect("GET");
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(paid.text().await.expect("text"), "sunny");
}

#[tokio::test]
async fn a_layer_offering_both_flows_offers_both_against_the_default_service() {
    // The README's app against the README's service: both flows by default on both sides. The
    // start-up check passes, the 402 offers the seed flow (body) and lnbtc (header) with one
    // invoice, and the lnbtc payment goes through.
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_service(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let facilitator = HttpFacilitator::builder(service.url(""))
        .bearer_token(API_KEY)
        .build()
        .expect("facilitator client");
    let layer = X402Layer::builder(facilitator, Network::Regtest)
        .public_base_url(&origin)
        .route("GET /weather", Price::msat(10_000))
        .build()
        .expect("layer builds");
    layer
        .check_facilitator()
        .await
        .expect("the default service serves both flows");
    assert_eq!(layer.offered_flows(), Flows::BOTH);
    let app = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .layer(layer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let client = reqwest::Client::new();
    let url = format!("{origin}/weather");
    let challenge = client.get(&url).send().await.expect("GET");
    assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
    let required: PaymentRequired = decode_payment_required(
        challenge
            .headers()
            .get(PAYMENT_REQUIRED)
            .expect("PAYMENT-REQUIRED")
            .as_bytes(),
        64 * 1024,
    )
    .expect("decodes");
    let body: serde_json::Value = challenge.json().await.expect("JSON");
    assert_eq!(body["x402Version"], 1, "the seed-flow offer: {body}");
    assert_eq!(body["accepts"][0]["network"], "lightning-regtest", "{body}");
    assert_eq!(
        body["accepts"][0]["extra"]["invoice"], required.accepts[0].extra["invoice"],
        "one invoice per 402"
    );

    let proof = pay_for(&client, &url, &service).await;
    let paid = client
        .get(&url)
        .header(PAYMENT_SIGNATURE, &proof)
        .send()
        .await
        .expect("GET");
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(paid.text().await.expect("text"), "sunny");
}
