//! Micro-benchmarks of the layer's per-request steps, each on its own:
//!
//! - `route_hit` / `route_miss`: the route table (`RouteMatcher`, the layer's own) with 1, 10
//!   and 1,000 priced routes, looking up a priced `{param}` route and a free `GET /health`;
//! - `header_decode`: `decode_payment_header` (base64 + JSON) of a real `X-PAYMENT` from the
//!   test wallet, typical and padded to the 8 KiB limit;
//! - `invoice`: the layer's invoice pre-check (`check_invoice`: network, amount, pinned payee,
//!   expiry) of a real mock invoice, beside its parts (BOLT11 parse, signature, secp context),
//!   to show where the time goes. `check_invoice` is one BOLT11 parse with lightning-invoice's
//!   own signature check plus one payee recovery on a shared context; nothing in this crate's
//!   build enables secp256k1's `rand-std`, so `Secp256k1::new` does not re-randomize.
//!
//! - `paywall`: a whole 402 through the layer in process (its invoice minted and signed by the
//!   in-process mock, checked, offered), as JSON to an API client and as the paywall page to a
//!   browser's navigation: the difference is what the page (its QR code above all) costs.
//!
//! Setup (a mock facilitator on loopback, a real invoice and payment) runs once, outside the
//! measured loops. Run: `cargo bench -p x402-lightning-bench --bench micro` (under
//! a minute).

use std::hint::black_box;
use std::str::FromStr as _;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use lightning_invoice::{Bolt11Invoice, SignedRawBolt11Invoice};
use x402_lightning::header::{
    DEFAULT_MAX_HEADER_BYTES, HeaderError, decode_payment_header, encode_payment_header,
};
use x402_lightning::internals::RouteMatcher;
use x402_lightning::invoice::{InvoiceExpectation, check_invoice, unix_now};
use x402_lightning::mock::{MockFacilitator, TestWallet};
use x402_lightning::{
    Facilitator as _, HttpFacilitator, Network, PaymentRequirements, Price, PriceTag, PublicKey,
    RequirementsRequest,
};

const PRICE_MSAT: u64 = 10_000;

/// `count` priced routes, a realistic mix: mostly static paths, `{param}` paths, a few
/// `POST`s and trailing wildcards. The first is `GET /items/{id}`, which every table prices.
fn priced_routes(count: usize) -> Vec<(String, PriceTag)> {
    (0..count)
        .map(|i| {
            let route = match i % 10 {
                _ if i == 0 => "GET /items/{id}".to_owned(),
                1 | 4 | 7 => format!("GET /v1/catalog{i}/{{id}}"),
                5 => format!("POST /ai/model{i}/infer"),
                9 => format!("/premium{i}/*"),
                _ => format!("GET /v1/report{i}"),
            };
            (route, PriceTag::fixed(Price::msat(PRICE_MSAT)))
        })
        .collect()
}

fn route_matching(c: &mut Criterion) {
    let tables: Vec<(usize, RouteMatcher)> = [1, 10, 1_000]
        .into_iter()
        .map(|count| {
            let routes = priced_routes(count);
            let table = RouteMatcher::new(routes.iter().map(|(r, tag)| (r.as_str(), tag.clone())))
                .expect("generated routes are valid");
            assert!(table.find(&Method::GET, "/items/42").is_some());
            assert!(table.find(&Method::GET, "/health").is_none());
            (count, table)
        })
        .collect();

    for (kind, path) in [("route_hit", "/items/42"), ("route_miss", "/health")] {
        let mut group = c.benchmark_group(kind);
        for (count, table) in &tables {
            group.bench_with_input(BenchmarkId::from_parameter(count), table, |b, table| {
                b.iter(|| {
                    table
                        .find(black_box(&Method::GET), black_box(path))
                        .is_some()
                })
            });
        }
        group.finish();
    }
}

/// A real invoice from the mock facilitator (asked over HTTP, as the layer asks) and a wallet
/// to pay it; the mock and its runtime are gone when this returns.
fn mock_requirements() -> (PaymentRequirements, TestWallet, PublicKey) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mock = MockFacilitator::start()
            .await
            .expect("mock facilitator starts");
        let facilitator = HttpFacilitator::new(mock.url()).expect("facilitator client");
        let ask = RequirementsRequest {
            description: "Current weather".to_owned(),
            mime_type: "application/json".to_owned(),
            ..RequirementsRequest::new(Network::Regtest, PRICE_MSAT, "http://127.0.0.1/weather")
        };
        let requirements = facilitator
            .requirements(&ask)
            .await
            .expect("mock answers /requirements");
        (requirements, TestWallet::random(), mock.node().node_id())
    })
}

/// A real payment padded with an unknown field (which the decoder keeps in `other`) so that
/// its encoding is exactly the layer's default 8 KiB limit.
fn maximal_payment(requirements: &PaymentRequirements, wallet: &TestWallet) -> String {
    let mut payment = wallet.authorize(requirements);
    payment.payload.other.insert("padding".into(), "".into());
    let unpadded = serde_json::to_vec(&payment)
        .expect("payload serializes")
        .len();
    // Base64 turns every 3 bytes into 4.
    let padding = DEFAULT_MAX_HEADER_BYTES / 4 * 3 - unpadded;
    payment
        .payload
        .other
        .insert("padding".into(), "x".repeat(padding).into());
    encode_payment_header(&payment)
}

fn header_decode(c: &mut Criterion, requirements: &PaymentRequirements, wallet: &TestWallet) {
    let typical = wallet.pay(requirements);
    let maximal = maximal_payment(requirements, wallet);
    assert!(
        (DEFAULT_MAX_HEADER_BYTES - 3..=DEFAULT_MAX_HEADER_BYTES).contains(&maximal.len()),
        "maximal header is {} bytes",
        maximal.len()
    );
    for value in [&typical, &maximal] {
        decode_payment_header(value.as_bytes(), DEFAULT_MAX_HEADER_BYTES)
            .expect("the benchmarked headers decode");
    }
    let over = format!("{maximal} ");
    assert!(matches!(
        decode_payment_header(over.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
        Err(HeaderError::TooLarge { .. })
    ));

    let mut group = c.benchmark_group("header_decode");
    for (kind, value) in [("typical", &typical), ("maximal", &maximal)] {
        let id = BenchmarkId::new(kind, format!("{}B", value.len()));
        group.bench_with_input(id, value.as_bytes(), |b, value| {
            b.iter(|| decode_payment_header(black_box(value), DEFAULT_MAX_HEADER_BYTES))
        });
    }
    group.finish();
}

fn invoice_checks(c: &mut Criterion, requirements: &PaymentRequirements, payee: PublicKey) {
    let invoice = requirements.extra.invoice.as_str();
    // As `pre_check` in src/layer/flow.rs: the layer's network and price, the pinned payee.
    let expected = InvoiceExpectation::new(Network::Regtest)
        .amount_msat(PRICE_MSAT)
        .payee(payee);
    check_invoice(invoice, &expected, unix_now()).expect("the mock invoice passes");

    let mut group = c.benchmark_group("invoice");
    group.bench_function("check_invoice", |b| {
        b.iter(|| check_invoice(black_box(invoice), &expected, unix_now()))
    });
    group.bench_function("parse_and_verify_signature", |b| {
        b.iter(|| Bolt11Invoice::from_str(black_box(invoice)))
    });
    group.bench_function("parse_without_signature", |b| {
        b.iter(|| SignedRawBolt11Invoice::from_str(black_box(invoice)))
    });
    // What the layer once spent per paid request re-encoding the parsed invoice for /verify
    // and /settle (it now sends the text the client sent, which passed the checks).
    let parsed = Bolt11Invoice::from_str(invoice).expect("the mock invoice parses");
    group.bench_function("encode_parsed_invoice", |b| {
        b.iter(|| black_box(&parsed).to_string())
    });
    // lightning-invoice builds a fresh context for each signature check or key recovery.
    group.bench_function("secp256k1_context_new", |b| {
        b.iter(bitcoin::secp256k1::Secp256k1::new)
    });
    group.finish();
}

/// A whole 402 through the layer, in process: JSON for `application/json`, the page for a
/// browser's navigation.
fn paywall_page(c: &mut Criterion) {
    use tower::ServiceExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let layer = x402_lightning::X402Layer::builder(MockFacilitator::new(), Network::Regtest)
        .public_base_url("http://shop.test")
        .route("GET /weather", Price::msat(PRICE_MSAT))
        .build()
        .expect("the layer builds");
    let app = axum::Router::new()
        .route("/weather", axum::routing::get(|| async { "sunny" }))
        .layer(layer);
    let challenge = |accept: &'static str| {
        let app = app.clone();
        let request = http::Request::get("/weather")
            .header("accept", accept)
            .body(axum::body::Body::empty())
            .expect("a request");
        runtime.block_on(async move {
            let response = app.oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), http::StatusCode::PAYMENT_REQUIRED);
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .expect("a body")
                .to_bytes()
        })
    };
    let navigation = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = challenge(navigation);
    assert!(page.starts_with(b"<!doctype html>"), "the page");
    let mut group = c.benchmark_group("paywall");
    group.bench_function("json_402", |b| b.iter(|| challenge("application/json")));
    group.bench_function("page_402", |b| b.iter(|| challenge(navigation)));
    group.finish();
}

fn benches(c: &mut Criterion) {
    let (requirements, wallet, payee) = mock_requirements();
    route_matching(c);
    header_decode(c, &requirements, &wallet);
    invoice_checks(c, &requirements, payee);
    paywall_page(c);
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = benches
}
criterion_main!(micro);
