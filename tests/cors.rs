//! Browsers pay from another origin: the demo's CORS policy (`examples/demo/cors.rs`, included
//! here) answers preflights for the payment headers without pricing them, and every answer that
//! carries `PAYMENT-REQUIRED`, `PAYMENT-RESPONSE` or `X-PAYMENT-RESPONSE` lists it in
//! `Access-Control-Expose-Headers`, with the CORS layer around the payment layer and without it.

mod common;
#[path = "../examples/demo/cors.rs"]
mod demo_cors;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::body::Body;
use axum::extract::Request;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    CONTENT_TYPE, ORIGIN,
};
use http::{HeaderMap, Method, Response, StatusCode};
use tower::{Layer as _, ServiceExt as _};
use x402_lightning::header::X_PAYMENT;
use x402_lightning::invoice::unix_now;
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::{PAYMENT_SIGNATURE, decode_payment_required};
use x402_lightning::mock::{Fault, MockFacilitator, TestWallet};
use x402_lightning::{FacilitatorCall, PaymentRequired, X402Layer};

use common::{demo_app, demo_prices};

const SHOP: &str = "https://shop.example";

/// The names a script may need to read, as the wire spells them.
const PAYMENT_HEADERS: [&str; 3] = ["PAYMENT-REQUIRED", "PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"];

struct Site {
    mock: MockFacilitator,
    wallet: TestWallet,
    layer: X402Layer<MockFacilitator>,
    /// Whether the demo's CORS layer wraps the payment layer.
    with_cors: bool,
}

impl Site {
    fn new(with_cors: bool) -> Self {
        let mock = MockFacilitator::new();
        let wallet = TestWallet::random();
        mock.fund(wallet.public_key(), 1_000_000_000);
        let layer = demo_prices(mock.clone(), mock.network())
            .public_base_url("http://localhost")
            .build()
            .expect("layer builds");
        Site {
            mock,
            wallet,
            layer,
            with_cors,
        }
    }

    async fn send(&self, request: Request) -> Response<Body> {
        let app = self
            .layer
            .clone()
            .layer(demo_app(Arc::new(AtomicUsize::new(0))));
        if self.with_cors {
            demo_cors::cors().layer(app).oneshot(request).await
        } else {
            app.oneshot(request).await
        }
        .expect("infallible")
    }

    async fn get(&self, path: &str, payment: Option<(&str, &str)>) -> Response<Body> {
        let mut request = Request::get(path).header(ORIGIN, SHOP);
        if let Some((name, value)) = payment {
            request = request.header(name, value);
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    /// A fresh `PAYMENT-SIGNATURE` for `GET /weather`.
    async fn lnbtc_proof(&self) -> String {
        let challenge = self.get("/weather", None).await;
        let header = challenge.headers()["payment-required"].as_bytes();
        let required = decode_payment_required(header, 64 * 1024).expect("challenge");
        let intended = IntendedRequest::Http {
            method: "GET",
            url: "http://localhost/weather",
            body: b"",
            header_lines: &[],
        };
        self.wallet
            .pay_lnbtc(&self.mock, &required, &intended, unix_now().as_secs())
            .expect("paid")
    }

    /// A fresh `X-PAYMENT` for `GET /weather`.
    async fn v1_payment(&self) -> String {
        let challenge = self.get("/weather", None).await;
        let body = axum::body::to_bytes(challenge.into_body(), 64 * 1024)
            .await
            .expect("body");
        let required: PaymentRequired = serde_json::from_slice(&body).expect("402 body");
        self.wallet.pay(&required.accepts[0])
    }
}

/// Every payment header of `headers` is listed in `Access-Control-Expose-Headers`; `Err` names
/// the first that is not. At least one of them must be there.
fn exposes_its_payment_headers(headers: &HeaderMap) -> Result<usize, String> {
    let exposed: Vec<String> = headers
        .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut carried = 0;
    for name in PAYMENT_HEADERS {
        if headers.contains_key(name) {
            carried += 1;
            let lower = name.to_ascii_lowercase();
            if !exposed
                .iter()
                .any(|listed| *listed == lower || listed == "*")
            {
                return Err(format!("{name} is not exposed: {exposed:?}"));
            }
        }
    }
    Ok(carried)
}

#[tokio::test]
async fn a_preflight_for_the_payment_headers_is_answered_and_prices_nothing() {
    let site = Site::new(true);
    for (method, path, asked) in [
        ("GET", "/weather", "payment-signature"),
        ("GET", "/premium/report.txt", "x-payment"),
        ("POST", "/ai/infer", "content-type,payment-signature"),
    ] {
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(ORIGIN, SHOP)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", asked)
            .body(Body::empty())
            .expect("request");
        let answer = site.send(preflight).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert_eq!(answer.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let allowed = answer.headers()[ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase();
        for name in asked.split(',') {
            assert!(allowed.contains(name), "{name} not allowed: {allowed}");
        }
    }
    assert!(site.mock.calls().is_empty(), "a preflight mints nothing");

    // Without the demo's CORS layer the app itself would refuse the preflight (axum's 405),
    // still unpriced: that is what the demo answered before.
    let bare = Site::new(false);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/weather")
        .header(ORIGIN, SHOP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "payment-signature")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        bare.send(preflight).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn every_answer_carrying_a_payment_header_exposes_it() {
    for with_cors in [true, false] {
        let site = Site::new(with_cors);
        let mut answers = Vec::new();

        // The challenge: PAYMENT-REQUIRED.
        answers.push(("402", site.get("/weather", None).await));
        // A JSON body that fails the route's check is refused before any challenge.
        let refused = site
            .send(
                Request::post("/ai/infer")
                    .header(ORIGIN, SHOP)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .expect("request"),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // Paid over lnbtc: PAYMENT-RESPONSE.
        let proof = site.lnbtc_proof().await;
        answers.push((
            "lnbtc 200",
            site.get("/weather", Some((PAYMENT_SIGNATURE, &proof)))
                .await,
        ));
        // A settle the facilitator refuses: a fresh challenge and the failed PAYMENT-RESPONSE.
        let proof = site.lnbtc_proof().await;
        site.mock.fail_next(
            FacilitatorCall::Settle,
            Fault::SettleFailed("duplicate_settlement".into()),
        );
        answers.push((
            "lnbtc settle refused",
            site.get("/weather", Some((PAYMENT_SIGNATURE, &proof)))
                .await,
        ));
        // Paid in the seed flow: X-PAYMENT-RESPONSE.
        let payment = site.v1_payment().await;
        answers.push((
            "v1 200",
            site.get("/weather", Some((X_PAYMENT, &payment))).await,
        ));
        // A seed-flow settle the facilitator refuses: a 402 with X-PAYMENT-RESPONSE.
        let payment = site.v1_payment().await;
        site.mock.fail_next(
            FacilitatorCall::Settle,
            Fault::SettleFailed("insufficient_funds".into()),
        );
        answers.push((
            "v1 settle refused",
            site.get("/weather", Some((X_PAYMENT, &payment))).await,
        ));

        for (what, answer) in &answers {
            let carried = exposes_its_payment_headers(answer.headers())
                .unwrap_or_else(|err| panic!("cors {with_cors}, {what}: {err}"));
            assert!(carried > 0, "cors {with_cors}, {what}: no payment header");
            if with_cors {
                assert_eq!(answer.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{what}");
            }
        }
        let statuses: Vec<u16> = answers
            .iter()
            .map(|(_, answer)| answer.status().as_u16())
            .collect();
        assert_eq!(statuses, [402, 200, 402, 200, 402], "cors {with_cors}");
    }
}
