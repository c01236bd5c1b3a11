//! Nothing is charged for a request the route would reject: a route's request check runs on the
//! head and the whole body before any invoice is minted, in either flow, so a body the handler
//! would refuse costs no mint, no `/verify` and no `/settle`. And a price may be decided from
//! the body itself, which the layer reads whole, so a chunked request (no `Content-Length`) is
//! priced by its real length.

mod common;
#[path = "common/frames_and_logs.rs"]
mod frames_and_logs;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::routing::post;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;
use x402_lightning::header::X_PAYMENT;
use x402_lightning::invoice::unix_now;
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::{PAYMENT_SIGNATURE, decode_payment_required};
use x402_lightning::lnbtc::types::PaymentRequired as V2PaymentRequired;
use x402_lightning::mock::{MockFacilitator, TestWallet};
use x402_lightning::price::check::RequestRejection;
use x402_lightning::{
    FacilitatorCall, Flows, PaymentRequired, Price, PriceTag, VerifiedPayment, X402Layer,
};

use common::{INFER_MSAT, demo_app, demo_prices};
use frames_and_logs::framed;

const ORIGIN: &str = "http://localhost";

struct Shop {
    mock: MockFacilitator,
    wallet: TestWallet,
    app: Router,
    runs: Arc<AtomicUsize>,
}

impl Shop {
    /// The demo's app and prices (its `POST /ai/infer` requires JSON `{"prompt": …}`), in process.
    fn demo(flows: Flows) -> Self {
        let mock = MockFacilitator::new();
        let layer = demo_prices(mock.clone(), mock.network())
            .public_base_url(ORIGIN)
            .flows(flows)
            .build()
            .expect("layer builds");
        let runs = Arc::new(AtomicUsize::new(0));
        Self::around(mock, demo_app(Arc::clone(&runs)).layer(layer), runs)
    }

    fn around(mock: MockFacilitator, app: Router, runs: Arc<AtomicUsize>) -> Self {
        let wallet = TestWallet::random();
        mock.fund(wallet.public_key(), 1_000_000_000);
        Shop {
            mock,
            wallet,
            app,
            runs,
        }
    }

    async fn send(&self, request: Request) -> Response<Body> {
        self.app.clone().oneshot(request).await.expect("infallible")
    }

    async fn infer(
        &self,
        content_type: &str,
        body: &str,
        payment: Option<(&str, &str)>,
    ) -> Response<Body> {
        let mut request = Request::post("/ai/infer").header(CONTENT_TYPE, content_type);
        if let Some((name, value)) = payment {
            request = request.header(name, value);
        }
        self.send(request.body(Body::from(body.to_owned())).expect("request"))
            .await
    }

    fn calls(&self) -> [usize; 3] {
        [
            FacilitatorCall::Requirements,
            FacilitatorCall::Verify,
            FacilitatorCall::Settle,
        ]
        .map(|call| self.mock.call_count(call))
    }

    /// A paid `PAYMENT-SIGNATURE` for `POST /ai/infer` with this JSON `body`.
    async fn lnbtc_proof(&self, body: &str) -> String {
        let challenge = self.infer("application/json", body, None).await;
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
        let header = challenge.headers()["payment-required"].as_bytes();
        let required = decode_payment_required(header, 64 * 1024).expect("challenge");
        let lines: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
        let intended = IntendedRequest::Http {
            method: "POST",
            url: &format!("{ORIGIN}/ai/infer"),
            body: body.as_bytes(),
            header_lines: &lines,
        };
        self.wallet
            .pay_lnbtc(&self.mock, &required, &intended, unix_now().as_secs())
            .expect("paid")
    }

    /// A signed `X-PAYMENT` for `POST /ai/infer` with this JSON `body`.
    async fn v1_payment(&self, body: &str) -> String {
        let challenge = self.infer("application/json", body, None).await;
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
        let required: PaymentRequired =
            serde_json::from_slice(&body_of(challenge).await).expect("v1 body");
        self.wallet.pay(&required.accepts[0])
    }
}

async fn body_of(response: Response<Body>) -> Bytes {
    axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body")
}

async fn error_of(response: Response<Body>) -> String {
    let body: Value = serde_json::from_slice(&body_of(response).await).expect("JSON");
    body["error"].as_str().expect("error").to_owned()
}

/// What axum's `Json<InferRequest>` would answer, and the bodies that earn it.
const REJECTED: [(&str, &str, StatusCode); 4] = [
    (
        "text/plain",
        r#"{"prompt":"hi"}"#,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    ),
    (
        "application/json",
        r#"{"prompt": "#,
        StatusCode::BAD_REQUEST,
    ),
    (
        "application/json",
        r#"{"prompt": 42}"#,
        StatusCode::UNPROCESSABLE_ENTITY,
    ),
    (
        "application/json",
        r#"{}"#,
        StatusCode::UNPROCESSABLE_ENTITY,
    ),
];

#[tokio::test]
async fn a_rejected_body_gets_its_4xx_before_any_invoice_is_minted() {
    for flows in [Flows::BOTH, Flows::V1, Flows::LNBTC] {
        let shop = Shop::demo(flows);
        for (content_type, body, status) in REJECTED {
            let answer = shop.infer(content_type, body, None).await;
            assert_eq!(answer.status(), status, "{flows}: {body}");
            assert!(!answer.headers().contains_key("payment-required"));
            assert_eq!(answer.headers()["cache-control"], "no-store");
            assert!(!error_of(answer).await.is_empty());
        }
        assert_eq!(shop.calls(), [0, 0, 0], "{flows}: nothing minted");
        // A body the route takes gets its 402.
        let challenge = shop
            .infer("application/json", r#"{"prompt":"hi"}"#, None)
            .await;
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED, "{flows}");
    }
}

#[tokio::test]
async fn a_rejected_body_costs_no_settle_in_the_lnbtc_flow() {
    let shop = Shop::demo(Flows::BOTH);
    let good = r#"{"prompt":"hello lightning"}"#;
    let proof = shop.lnbtc_proof(good).await;
    let minted = shop.calls();
    // The same proof with bodies the route refuses: their own 4xx, and nothing settled.
    for (content_type, body, status) in REJECTED {
        let answer = shop
            .infer(content_type, body, Some((PAYMENT_SIGNATURE, &proof)))
            .await;
        assert_eq!(answer.status(), status, "{body}");
        assert!(!answer.headers().contains_key("payment-response"));
    }
    assert_eq!(shop.calls(), minted, "no settle, no mint");
    assert_eq!(shop.runs.load(Ordering::SeqCst), 0);
    // The proof is untouched: with the body it paid for, it is settled once and served.
    let paid = shop
        .infer("application/json", good, Some((PAYMENT_SIGNATURE, &proof)))
        .await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(shop.mock.call_count(FacilitatorCall::Settle), 1);
}

#[tokio::test]
async fn a_rejected_body_costs_no_verify_in_the_seed_flow() {
    let shop = Shop::demo(Flows::V1);
    let payment = shop.v1_payment(r#"{"prompt":"hi"}"#).await;
    let minted = shop.calls();
    for (content_type, body, status) in REJECTED {
        let answer = shop
            .infer(content_type, body, Some((X_PAYMENT, &payment)))
            .await;
        assert_eq!(answer.status(), status, "{body}");
    }
    assert_eq!(shop.calls(), minted, "no /verify, no /settle");
    let balance = shop.mock.balance(shop.wallet.public_key());
    let paid = shop
        .infer(
            "application/json",
            r#"{"prompt":"hi"}"#,
            Some((X_PAYMENT, &payment)),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(
        shop.mock.balance(shop.wallet.public_key()),
        balance - INFER_MSAT
    );
}

/// An app whose `POST /summarize` answers with the bytes it got and the amount paid.
fn summarize_app(
    tag: PriceTag,
    mock: &MockFacilitator,
    flows: Flows,
) -> (Router, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let layer = X402Layer::builder(mock.clone(), mock.network())
        .public_base_url(ORIGIN)
        .flows(flows)
        .max_body_bytes(64 * 1024)
        .build()
        .expect("layer builds");
    let app = Router::new().route(
        "/summarize",
        post(move |paid: Option<VerifiedPayment>, body: Bytes| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let paid = paid.map_or(0, |paid| paid.amount_msat);
                format!("{} bytes, {paid} msat", body.len())
            }
        })
        .route_layer(layer.charge(tag).expect("charge")),
    );
    (app, runs)
}

/// A request whose body arrives in chunks of 7 bytes, without `Content-Length`.
fn chunked(body: &'static [u8], header: Option<(&str, &str)>) -> Request {
    let mut request = Request::post("/summarize").header(CONTENT_TYPE, "text/plain");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.body(framed(body, 7)).expect("request")
}

/// 1 sat per byte, and free under 8 bytes.
fn by_length() -> PriceTag {
    PriceTag::dynamic_with_body(|_head: &http::request::Parts, body: &Bytes| {
        let bytes = u64::try_from(body.len()).unwrap_or(u64::MAX);
        async move { (bytes >= 8).then(|| Price::sats(bytes)) }
    })
}

#[tokio::test]
async fn a_price_by_body_length_reads_a_chunked_body_whole() {
    const DOCUMENT: &[u8] = b"a document of forty-two bytes, in chunks.."; // 42 bytes
    for flows in [Flows::BOTH, Flows::V1] {
        let mock = MockFacilitator::new();
        let (app, runs) = summarize_app(by_length(), &mock, flows);
        let unpaid = chunked(DOCUMENT, None);
        assert!(!unpaid.headers().contains_key(CONTENT_LENGTH));
        let challenge = app.clone().oneshot(unpaid).await.expect("infallible");
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED, "{flows}");
        let required: PaymentRequired =
            serde_json::from_slice(&body_of(challenge).await).expect("v1 body");
        assert_eq!(required.accepts[0].max_amount_required, 42_000, "{flows}");

        // Paid: the handler gets every byte, at that price.
        let wallet = TestWallet::random();
        mock.fund(wallet.public_key(), 1_000_000);
        let payment = wallet.pay(&required.accepts[0]);
        let paid = app
            .clone()
            .oneshot(chunked(DOCUMENT, Some((X_PAYMENT, &payment))))
            .await
            .expect("infallible");
        assert_eq!(paid.status(), StatusCode::OK, "{flows}");
        assert_eq!(&body_of(paid).await[..], b"42 bytes, 42000 msat");
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // A short body is free this time: it still reaches the handler whole.
        let free = app
            .clone()
            .oneshot(chunked(b"tiny", None))
            .await
            .expect("infallible");
        assert_eq!(free.status(), StatusCode::OK);
        assert_eq!(&body_of(free).await[..], b"4 bytes, 0 msat");
    }
}

#[tokio::test]
async fn an_lnbtc_payment_priced_by_its_body_binds_the_same_bytes() {
    const DOCUMENT: &[u8] = b"twenty bytes of text"; // 20 bytes
    let mock = MockFacilitator::new();
    let (app, _) = summarize_app(by_length(), &mock, Flows::LNBTC);
    let challenge = app
        .clone()
        .oneshot(chunked(DOCUMENT, None))
        .await
        .expect("infallible");
    let header = challenge.headers()["payment-required"].as_bytes();
    let required: V2PaymentRequired =
        decode_payment_required(header, 64 * 1024).expect("challenge");
    assert_eq!(required.accepts[0].amount, "20000");
    let lines: [(&str, &[u8]); 0] = [];
    let intended = IntendedRequest::Http {
        method: "POST",
        url: &format!("{ORIGIN}/summarize"),
        body: DOCUMENT,
        header_lines: &lines,
    };
    let proof = TestWallet::random()
        .pay_lnbtc(&mock, &required, &intended, unix_now().as_secs())
        .expect("paid");
    let paid = app
        .oneshot(chunked(DOCUMENT, Some((PAYMENT_SIGNATURE, &proof))))
        .await
        .expect("infallible");
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(&body_of(paid).await[..], b"20 bytes, 20000 msat");
}

#[tokio::test]
async fn a_custom_check_sees_the_head_and_body_and_a_body_over_the_limit_is_413() {
    let mock = MockFacilitator::new();
    let tag = PriceTag::fixed(Price::sats(1)).check_request(
        |head: &http::request::Parts, body: &Bytes| {
            if head.headers.get("x-tenant").is_none() {
                return Err(RequestRejection::new(StatusCode::FORBIDDEN, "who are you?"));
            }
            if body.is_empty() {
                // A 402 from a check would read as a payment answer: it becomes a 400.
                return Err(RequestRejection::new(StatusCode::PAYMENT_REQUIRED, "empty"));
            }
            Ok(())
        },
    );
    let (app, runs) = summarize_app(tag, &mock, Flows::V1);
    let send = |tenant: bool, body: Vec<u8>| {
        let mut request = Request::post("/summarize");
        if tenant {
            request = request.header("x-tenant", "acme");
        }
        app.clone()
            .oneshot(request.body(Body::from(body)).expect("request"))
    };
    let anonymous = send(false, b"text".to_vec()).await.expect("infallible");
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_of(anonymous).await, "who are you?");
    let empty = send(true, Vec::new()).await.expect("infallible");
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let large = send(true, vec![b'x'; 64 * 1024 + 1])
        .await
        .expect("infallible");
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 0);
    let fine = send(true, b"text".to_vec()).await.expect("infallible");
    assert_eq!(fine.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}
