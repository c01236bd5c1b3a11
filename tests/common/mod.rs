//! A demo-like app behind `X402Layer`, served over real HTTP on loopback, paid through the
//! mock facilitator (also real HTTP), with a funded test wallet and a counter of handler runs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};
#[path = "../../examples/demo/shared.rs"]
mod demo_shared;
#[allow(unused_imports, reason = "each test binary uses some of them")]
pub use self::demo_shared::{INFER_MSAT, PREMIUM_MSAT, WEATHER_MSAT, demo_prices};

use x402_lightning::Flows;
use x402_lightning::clock::{Clock, SystemClock};
use x402_lightning::header::{decode_payment_response_header, encode_payment_header};
use x402_lightning::layer::X402LayerBuilder;
use x402_lightning::mock::{MockFacilitator, TestWallet};
use x402_lightning::types::{ExactLightningPayload, X402_VERSION};
use x402_lightning::{
    FacilitatorCall, HttpFacilitator, Network, PaymentPayload, PaymentRequired,
    PaymentRequirements, Scheme, SettleResponse, VerifiedPayment,
};

pub const FUNDS_MSAT: u64 = 1_000_000_000;

/// The payment headers as PROTOCOL.md spells them on the wire. The harness sends and reads
/// these, not the crate's constants, so that every layer test also checks the names.
pub const X_PAYMENT_ON_THE_WIRE: &str = "X-PAYMENT";
/// See [`X_PAYMENT_ON_THE_WIRE`].
pub const X_PAYMENT_RESPONSE_ON_THE_WIRE: &str = "X-PAYMENT-RESPONSE";

/// The demo's handlers, counting how often a handler ran.
pub fn demo_app(runs: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/", get(|| async { "free" }))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/weather", get(weather))
        .route("/premium/{*path}", get(premium))
        .route("/ai/infer", post(infer))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .with_state(runs)
}

async fn weather(State(runs): State<Arc<AtomicUsize>>, payment: VerifiedPayment) -> Json<Value> {
    runs.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "conditions": "sunny",
        "payer": payment.payer,
        "paymentHash": payment.payment_hash,
        "amountMsat": payment.amount_msat,
        "network": payment.network,
        "settled": payment.settled,
    }))
}

async fn premium(State(runs): State<Arc<AtomicUsize>>, Path(path): Path<String>) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("premium {path}")
}

async fn infer(State(runs): State<Arc<AtomicUsize>>, Json(body): Json<Value>) -> Json<Value> {
    runs.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "completion": body["prompt"], "model": "test" }))
}

/// A running app, its mock facilitator and a funded wallet.
pub struct Harness {
    pub mock: MockFacilitator,
    pub wallet: TestWallet,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub runs: Arc<AtomicUsize>,
    /// The clock the layer checks invoices by (the system's unless a test set another).
    pub clock: Arc<dyn Clock>,
}

/// The demo app with the demo prices on regtest.
pub async fn start() -> Harness {
    start_with(|prices| prices).await
}

/// The demo app with the demo prices changed by `configure`.
pub async fn start_with(
    configure: impl FnOnce(X402LayerBuilder<HttpFacilitator>) -> X402LayerBuilder<HttpFacilitator>,
) -> Harness {
    start_layer(|mock| {
        configure(demo_prices(facilitator_for(mock), mock.network()).flows(Flows::V1))
    })
    .await
}

/// The demo app behind the layer `prices` declares for a fresh regtest mock (which it may read,
/// e.g. to pin the mock's node key), instead of the demo prices.
pub async fn start_layer(
    prices: impl FnOnce(&MockFacilitator) -> X402LayerBuilder<HttpFacilitator>,
) -> Harness {
    let mock = MockFacilitator::start().await.expect("mock starts");
    start_layer_on(mock, prices).await
}

/// [`start_layer`] on a mock configured by the caller.
pub async fn start_layer_on(
    mock: MockFacilitator,
    prices: impl FnOnce(&MockFacilitator) -> X402LayerBuilder<HttpFacilitator>,
) -> Harness {
    let layer = prices(&mock).build().expect("layer builds");
    let runs = Arc::new(AtomicUsize::new(0));
    let app = demo_app(Arc::clone(&runs)).layer(layer);
    harness(mock, app, runs).await
}

/// A client of `mock` as the harness configures it: the crate's default timeouts (10 s a call),
/// so that a loaded CI machine never turns a legitimate call into a 504. Tests that provoke a
/// timeout build their own short-timeout client.
pub fn facilitator_for(mock: &MockFacilitator) -> HttpFacilitator {
    HttpFacilitator::new(mock.url()).expect("facilitator client")
}

/// Serves `app` (whose handlers count their runs in `runs`) and funds a wallet at `mock`.
pub async fn harness(mock: MockFacilitator, app: Router, runs: Arc<AtomicUsize>) -> Harness {
    let addr = serve(app).await;
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), FUNDS_MSAT);
    Harness {
        mock,
        wallet,
        addr,
        client: reqwest::Client::new(),
        runs,
        clock: Arc::new(SystemClock),
    }
}

/// Serves `app` on `127.0.0.1:0` with the peer's address as `ConnectInfo`; returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    addr
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// This harness with the clock its layer (and mock) were given.
    pub fn on_clock(self, clock: impl Clock) -> Self {
        Self {
            clock: Arc::new(clock),
            ..self
        }
    }

    /// Wall-clock time as the layer sees it.
    pub fn now(&self) -> Duration {
        self.clock.unix_now()
    }

    pub fn handler_runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    pub fn calls(&self, call: FacilitatorCall) -> usize {
        self.mock.call_count(call)
    }

    /// `GET path` with an optional `X-PAYMENT` value.
    pub async fn get(&self, path: &str, payment: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(payment) = payment {
            request = request.header(X_PAYMENT_ON_THE_WIRE, payment);
        }
        request.send().await.expect("request sent")
    }

    /// The requirements of a fresh 402 for `GET path`.
    pub async fn requirements(&self, path: &str) -> PaymentRequirements {
        let response = self.get(path, None).await;
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        let mut body: PaymentRequired = response.json().await.expect("402 body");
        body.accepts.remove(0)
    }

    /// An `X-PAYMENT` value paying a fresh invoice of `GET path`.
    pub async fn payment_for(&self, path: &str) -> String {
        let requirements = self.requirements(path).await;
        self.wallet.pay(&requirements)
    }
}

/// `wallet`'s honest `X-PAYMENT` for any regtest invoice.
pub fn pay_invoice(wallet: &TestWallet, invoice: &str) -> String {
    encode_payment_header(&PaymentPayload {
        x402_version: X402_VERSION,
        scheme: Scheme::Exact,
        network: Network::Regtest,
        payload: ExactLightningPayload::new(invoice.to_owned(), wallet.sign(invoice), wallet.id()),
    })
}

/// The decoded `X-PAYMENT-RESPONSE` of a response, if any.
pub fn payment_response(response: &reqwest::Response) -> Option<SettleResponse> {
    let value = response.headers().get(X_PAYMENT_RESPONSE_ON_THE_WIRE)?;
    Some(decode_payment_response_header(value.as_bytes(), 64 * 1024).expect("decodable"))
}
