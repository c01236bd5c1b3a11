//! A priced app driven in process (`tower::ServiceExt::oneshot`), for the adversarial suites:
//! a handler that counts its runs and keeps what reached it, answers read whole, requests on the
//! configured origin, and proofs an attacker mints for itself.
#![allow(dead_code, reason = "each suite uses some of it")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::routing::{any, get, post};
use bitcoin::hex::DisplayHex as _;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use x402_lightning::clock::{Clock, ManualClock};
use x402_lightning::lnbtc::binding::RequestHash;
use x402_lightning::lnbtc::header::{
    decode_payment_required, decode_payment_response, decode_payment_signature,
    encode_payment_signature,
};
use x402_lightning::lnbtc::types as v2;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning::{Facilitator, Network, VerifiedPayment, X402Layer};

/// The public origin every app here is bound to, and the `Host` its requests carry.
pub const ORIGIN: &str = "http://shop.example";
pub const HOST: &str = "shop.example";

/// How long a request may take before the test calls it a hang.
pub const GUARD: Duration = Duration::from_secs(20);

/// What reached the handler.
#[derive(Clone, Default)]
pub struct Seen {
    runs: Arc<AtomicUsize>,
    payment_headers: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl Seen {
    /// How often the handler ran.
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// How many requests reached it with a payment header.
    pub fn payment_headers(&self) -> usize {
        self.payment_headers.load(Ordering::SeqCst)
    }

    /// The bodies it got, in order.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Counts a run, notes a payment header that got through, keeps the body.
pub async fn handler(State(seen): State<Seen>, request: Request<Body>) -> axum::Json<Value> {
    seen.runs.fetch_add(1, Ordering::SeqCst);
    let headers = request.headers();
    if headers.contains_key("payment-signature") || headers.contains_key("x-payment") {
        seen.payment_headers.fetch_add(1, Ordering::SeqCst);
    }
    let paid = request
        .extensions()
        .get::<VerifiedPayment>()
        .map(|payment| payment.payment_hash.clone());
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let len = body.len();
    seen.bodies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(body);
    axum::Json(json!({ "content": "priced", "paid": paid, "len": len }))
}

/// The handler on `/weather`, `/forecast`, `/dyn` (GET), `/ai/infer` (POST) and `/free` (any
/// method), behind `layer` (a price table says which are priced).
pub fn app<F: Facilitator>(layer: X402Layer<F>, seen: &Seen) -> Router {
    Router::new()
        .route("/weather", get(handler))
        .route("/forecast", get(handler))
        .route("/dyn", get(handler))
        .route("/ai/infer", post(handler))
        .route("/free", any(handler))
        .with_state(seen.clone())
        .layer(layer)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "{} body is not JSON ({err}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string in {}", self.json()))
            .to_owned()
    }

    /// The decoded `PAYMENT-REQUIRED` of a 402.
    pub fn challenge(&self) -> v2::PaymentRequired {
        assert_eq!(self.status, StatusCode::PAYMENT_REQUIRED, "{self:?}");
        let header = self
            .headers
            .get("payment-required")
            .expect("a PAYMENT-REQUIRED header");
        decode_payment_required(header.as_bytes(), 1 << 20).expect("decodable challenge")
    }

    /// The decoded `PAYMENT-RESPONSE`, if any.
    pub fn settlement(&self) -> Option<v2::SettleResponse> {
        let header = self.headers.get("payment-response")?;
        Some(decode_payment_response(header.as_bytes(), 1 << 20).expect("decodable"))
    }

    /// A refusal of the layer: JSON with an `error`, never stored by a cache.
    pub fn assert_refusal(&self) {
        assert_eq!(
            self.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..]),
            "{self:?}"
        );
        assert_eq!(
            self.headers.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{self:?}"
        );
        let _ = self.error();
    }

    /// A 402 with a fresh challenge and `error` = `expected` (exactly).
    pub fn assert_402(&self, expected: &str) {
        assert_eq!(self.status, StatusCode::PAYMENT_REQUIRED, "{self:?}");
        self.assert_refusal();
        let _ = self.challenge();
        assert_eq!(self.error(), expected, "{self:?}");
    }
}

/// `method target` to the origin's host, with `headers` (raw values).
pub fn request(method: &str, target: &str, body: Body, headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(target)
        .header("host", HOST);
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value).expect("header value"));
    }
    builder.body(body).expect("request")
}

/// `GET target`, with `PAYMENT-SIGNATURE: proof` when given.
pub fn get_req(target: &str, proof: Option<&str>) -> Request<Body> {
    match proof {
        Some(proof) => request(
            "GET",
            target,
            Body::empty(),
            &[("payment-signature", proof.as_bytes())],
        ),
        None => request("GET", target, Body::empty(), &[]),
    }
}

/// `request` through `app`, read whole; a hang fails the test after [`GUARD`].
pub async fn send_to(app: Router, request: Request<Body>) -> Answer {
    let response = tokio::time::timeout(GUARD, app.oneshot(request))
        .await
        .expect("the layer answers")
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 24).await.expect("body");
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `proof` with its JSON edited by `edit`, encoded again.
pub fn edit_proof(proof: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut payment = decode_payment_signature(proof.as_bytes(), 1 << 20).expect("decodable");
    edit(&mut payment);
    x402_lightning::header::encode_header(&payment).expect("encodable")
}

/// A proof for `required` with an invoice minted by `node` for the same request hash, amount
/// and expiry, paid by the attacker itself (who therefore knows the preimage); `accepted.payTo`
/// becomes `pay_to` when given.
pub fn self_minted_proof(
    required: &v2::PaymentRequired,
    node: &MockNode,
    pay_to: Option<String>,
    clock: &ManualClock,
) -> String {
    let offer = &required.accepts[0];
    let request_hash =
        RequestHash::from_hex(offer.request_hash().expect("request hash")).expect("hex");
    let spec = InvoiceSpec {
        network: Network::Regtest,
        amount_msat: offer.amount.parse().expect("amount"),
        description: String::new(),
        description_hash: Some(request_hash.0),
        created_at: clock.unix_now(),
        expiry: Duration::from_secs(offer.max_timeout_seconds),
    };
    let minted = node.mint(&spec).expect("minted");
    let mut accepted = offer.clone();
    accepted
        .extra
        .insert("invoice".into(), json!(minted.invoice.to_string()));
    if let Some(pay_to) = pay_to {
        accepted.pay_to = pay_to;
    }
    encode_payment_signature(&v2::PaymentPayload::lnbtc(
        Some(required.resource.clone()),
        accepted,
        minted.preimage.to_lower_hex_string(),
    ))
}
