//! The paywall tests' harness: requests sent through `oneshot` and their answers read whole,
//! what a page's script would send, and a receiver whose invoice states the test scripts.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use x402_lightning::lnbtc::header::decode_payment_required;
use x402_lightning::lnbtc::types::PaymentRequired;
use x402_lightning::mock::MockFacilitator;
use x402_lightning::receiver::{
    InvoiceRequest, InvoiceState, InvoiceStatus, Receiver, ReceiverError,
};

/// A browser's navigation (Chromium's `Accept`).
pub const NAVIGATION: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
/// The page's poll header, as the wire spells it.
pub const POLL: &str = "X402-Invoice-State";

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Whether it is the paywall page.
    pub fn is_page(&self) -> bool {
        self.header("content-type") == Some("text/html; charset=utf-8")
    }

    /// The v2 challenge of `PAYMENT-REQUIRED`.
    pub fn challenge(&self) -> PaymentRequired {
        let header = self.header("payment-required").expect("PAYMENT-REQUIRED");
        decode_payment_required(header.as_bytes(), 64 * 1024).expect("a v2 challenge")
    }

    /// The invoice of `PAYMENT-REQUIRED`.
    pub fn invoice(&self) -> String {
        self.challenge().accepts[0].extra["invoice"]
            .as_str()
            .expect("an invoice")
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    /// The JSON of the page's data block `id`.
    pub fn data_block(&self, id: &str) -> Value {
        let open = format!("<script type=\"application/json\" id=\"{id}\">");
        let start = self.body.find(&open).expect("the data block") + open.len();
        let end = start + self.body[start..].find("</script>").expect("its end");
        serde_json::from_str(&self.body[start..end]).expect("JSON data")
    }

    /// The page's payment hash.
    pub fn payment_hash(&self) -> String {
        self.data_block("x402-paywall")["paymentHash"]
            .as_str()
            .expect("the page's payment hash")
            .to_owned()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A browser's navigation to `path` of `app`: the paywall page, a 402.
pub async fn page_of(app: &Router, path: &str) -> Answer {
    let answer = send(app, get_with(path, &[("accept", NAVIGATION)])).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        answer.body
    );
    assert!(answer.is_page(), "{:?}", answer.headers);
    answer
}

pub fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).expect("request")
}

/// What the page's script sends once it has `preimage`: the challenge it carries, accepted.
pub fn proof_from_page(page: &Answer, preimage: &str) -> String {
    let challenge = page.data_block("x402-challenge");
    let payment = json!({
        "x402Version": 2,
        "resource": challenge["resource"],
        "accepted": challenge["accepts"][0],
        "payload": {"preimage": preimage},
    });
    base64::engine::general_purpose::STANDARD.encode(payment.to_string())
}

/// What a test's receiver answers about the invoice of a payment hash.
pub type StatusScript =
    Arc<dyn Fn(&[u8; 32]) -> Result<Option<InvoiceStatus>, ReceiverError> + Send + Sync>;

/// A receiver of the tests': mints through the mock, answers invoice states as scripted.
pub struct ScriptedReceiver {
    mock: MockFacilitator,
    script: StatusScript,
}

impl ScriptedReceiver {
    pub fn new(
        mock: MockFacilitator,
        script: impl Fn(&[u8; 32]) -> Result<Option<InvoiceStatus>, ReceiverError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            mock,
            script: Arc::new(script),
        }
    }

    /// Cannot tell (`Unsupported`: the poll answers 501).
    pub fn cannot_tell(mock: MockFacilitator) -> Self {
        Self::new(mock, |_| Err(ReceiverError::Unsupported))
    }

    /// Cancelled, whatever the invoice.
    pub fn cancelling(mock: MockFacilitator) -> Self {
        Self::new(mock, |hash| {
            Ok(Some(InvoiceStatus {
                payment_hash: bitcoin::hex::DisplayHex::to_lower_hex_string(&hash[..]),
                state: InvoiceState::Cancelled,
                preimage: None,
            }))
        })
    }
}

impl Receiver for ScriptedReceiver {
    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
        self.mock.create_invoice(request).await
    }

    async fn invoice_status(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<InvoiceStatus>, ReceiverError> {
        (self.script)(hash)
    }
}
