//! The service's HTTP contract, route by route, over real HTTP: API keys, bounded bodies, JSON
//! errors for malformed input, the seed flow served by default (and its clear refusal under
//! `X402_FACILITATOR_FLOWS=lnbtc`), `/requirements` through a node (and a node that
//! misbehaves), `/supported`, `/healthz`, `/metrics`, `/pay`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use reqwest::StatusCode;
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::clock::ManualClock;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning_facilitator::config::Flow;
use x402_lightning_facilitator::node::{
    Cancelled, InvoiceDescription, InvoiceLookup, InvoiceRequest, LightningNode, NodeError,
    NodeFuture, PaymentRequest, PaymentStatus, SimulatedNode,
};
use x402_lightning_facilitator::store::Store;
use x402_lightning_facilitator::{Config, Service};

use self::common::{Proof, serve_on_loopback, sqlite_store};

const NOW: u64 = 1_700_000_000;
const KEY: &str = "k3y-one";

/// A service in process on a loopback port.
struct Running {
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(node: Arc<dyn LightningNode>, configure: impl FnOnce(&mut Config)) -> Running {
        let clock = Arc::new(ManualClock::at_unix(Duration::from_secs(NOW)));
        Running::serve(configure, clock, |store, config, clock| {
            Service::with_parts(store, node, config, clock).expect("a valid configuration")
        })
        .await
    }

    async fn serve(
        configure: impl FnOnce(&mut Config),
        clock: Arc<ManualClock>,
        build: impl FnOnce(Arc<dyn Store>, &Config, Arc<ManualClock>) -> Service,
    ) -> Running {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = sqlite_store(dir.path()).await;
        let mut config = Config::default();
        configure(&mut config);
        let service = Arc::new(build(store.clone(), &config, clock));
        let base = format!("http://{}", serve_on_loopback(service).await);
        Running {
            base,
            store,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn simulated(configure: impl FnOnce(&mut Config)) -> Running {
        let clock = Arc::new(ManualClock::at_unix(Duration::from_secs(NOW)));
        let node = Arc::new(SimulatedNode::random(clock.clone()));
        Running::serve(configure, clock, |store, config, clock| {
            Service::with_simulated_node(store, node, config, clock).expect("a valid configuration")
        })
        .await
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    /// The mint counters of `/metrics`, as text.
    async fn mints(&self) -> String {
        let metrics = self.get("/metrics").await.text().await.expect("text");
        metrics
            .lines()
            .filter(|line| line.starts_with("x402_facilitator_mints_total"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn requirements_request(network: &str) -> Value {
    json!({
        "x402Version": 1,
        "scheme": "exact",
        "network": network,
        "amount": "10000",
        "resource": "http://shop.example/weather",
        "description": "weather",
        "mimeType": "application/json",
        "maxTimeoutSeconds": 60,
        "descriptionHash": "11".repeat(32),
    })
}

#[tokio::test]
async fn settle_and_requirements_need_an_api_key_when_keys_are_set() {
    let service =
        Running::simulated(|config| config.api_keys = vec![KEY.into(), "other".into()]).await;
    let body = Proof::mint(&MockNode::random(), Network::Regtest, NOW).settle_body();
    let seed_flow = json!({"x402Version": 1, "paymentPayload": {}, "paymentRequirements": {}});
    for (path, body) in [
        ("/settle", body),
        ("/settle", seed_flow.clone()),
        ("/verify", seed_flow),
        ("/requirements", requirements_request("lightning-regtest")),
    ] {
        let url = format!("{}{path}", service.base);
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic k3y-one"),
            Some("Bearer "),
        ] {
            let mut request = service.client.post(&url).json(&body);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.expect("POST");
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {auth:?}"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let error: Value = response.json().await.expect("JSON");
            assert!(
                error["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("API key"))
            );
        }
        for auth in [
            "Bearer k3y-one",
            "Bearer other",
            "bearer k3y-one",
            "BEARER  other ",
        ] {
            let response = service
                .client
                .post(&url)
                .header("authorization", auth)
                .json(&body)
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::OK, "{path} with {auth:?}");
        }
    }
    // The read-only routes stay open.
    assert_eq!(service.get("/supported").await.status(), StatusCode::OK);
    assert_eq!(service.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(service.get("/metrics").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_settles_get_a_clear_json_error_and_consume_nothing() {
    let service = Running::simulated(|config| config.max_body_bytes = 4096).await;
    let cases: [(&str, Value, &str); 4] = [
        ("not JSON", json!(null), "not JSON"),
        ("an array", json!([1, 2]), "must be an object"),
        (
            "x402Version 3",
            json!({"x402Version": 3, "paymentPayload": {}, "paymentRequirements": {}}),
            "x402Version must be 2",
        ),
        (
            "no requirements",
            json!({"x402Version": 2, "paymentPayload": {"x402Version": 2}}),
            "required",
        ),
    ];
    for (case, body, expected) in cases {
        let body = if case == "not JSON" {
            "{\"x402Version\": 2,".to_owned()
        } else {
            body.to_string()
        };
        let (status, error) = service.post("/settle", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{case}: {message}");
    }
    let (status, error) = service.post("/settle", vec![b' '; 5000]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error["error"].as_str().is_some_and(|e| e.contains("4096")));
    // A payment of another version inside a v2 request is a verdict.
    let (status, verdict) = service
        .post("/settle", json!({"x402Version": 2, "paymentPayload": {"x402Version": 7}, "paymentRequirements": {}}).to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["errorReason"], "invalid_x402_version");
    // Either version saying 1 is the seed flow's request (served by default): a verdict from
    // its ordered checks (versions first), not an error.
    for body in [
        json!({"x402Version": 1, "paymentPayload": {}, "paymentRequirements": {}}),
        json!({"x402Version": 2, "paymentPayload": {"x402Version": 1}, "paymentRequirements": {}}),
    ] {
        let (status, verdict) = service.post("/settle", body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {verdict}");
        assert_eq!(verdict["success"], false, "{body}: {verdict}");
        assert_eq!(
            verdict["errorReason"], "invalid_x402_version",
            "{body}: {verdict}"
        );
        assert_eq!(verdict["transaction"], "", "{body}: {verdict}");
    }
    assert_eq!(service.store.count().await.expect("count"), 0);

    // Without the seed flow (X402_FACILITATOR_FLOWS=lnbtc), version 1 is a 400.
    let lnbtc_only = Running::simulated(|config| config.flows = vec![Flow::Lnbtc]).await;
    for (case, body) in [
        (
            "x402Version 1",
            json!({"x402Version": 1, "paymentPayload": {}, "paymentRequirements": {}}),
        ),
        (
            "a v1 payment",
            json!({"x402Version": 2, "paymentPayload": {"x402Version": 1}, "paymentRequirements": {}}),
        ),
    ] {
        let (status, error) = lnbtc_only.post("/settle", body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("not served by this facilitator"),
            "{case}: {message}"
        );
    }
    assert_eq!(lnbtc_only.store.count().await.expect("count"), 0);
}

#[tokio::test]
async fn verify_and_unknown_routes_answer_json() {
    // The seed flow (served by default) answers every JSON object at /verify with a verdict of
    // its ordered checks; version first.
    let service = Running::simulated(|_| {}).await;
    for body in [json!({"x402Version": 1}), json!({"x402Version": 2})] {
        let (status, verdict) = service.post("/verify", body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {verdict}");
        assert_eq!(
            verdict,
            json!({"isValid": false, "invalidReason": "invalid_x402_version"}),
            "{body}"
        );
    }
    for (body, expected) in [
        ("[]", "must be an object"),
        ("{\"x402Version\": 1,", "not JSON"),
    ] {
        let (status, error) = service.post("/verify", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected)),
            "{body}: {error}"
        );
    }
    // Without the seed flow there is no /verify: lnbtc proofs are settled at once.
    let lnbtc_only = Running::simulated(|config| config.flows = vec![Flow::Lnbtc]).await;
    for body in [json!({"x402Version": 1}), json!({"x402Version": 2})] {
        let (status, error) = lnbtc_only.post("/verify", body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("not served here") && e.contains("/settle")),
            "{body}: {error}"
        );
    }
    let (status, _) = service.post("/nowhere", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = service.get("/settle").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let error: Value = response.json().await.expect("JSON");
    assert!(error["error"].is_string());
}

#[tokio::test]
async fn requirements_mint_a_checked_invoice_bound_to_the_description_hash() {
    let service = Running::simulated(|_| {}).await;
    let (status, requirements) = service
        .post(
            "/requirements",
            requirements_request("lightning-regtest").to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{requirements}");
    let invoice = requirements["extra"]["invoice"].as_str().expect("invoice");
    let decoded = x402_lightning::lnbtc::invoice::decode(invoice).expect("decodes");
    assert_eq!(decoded.amount_msat, Some(10_000));
    assert_eq!(decoded.description_hash, Some([0x11; 32]));
    assert_eq!(decoded.expiry_secs, 60);
    assert_eq!(decoded.created_at, NOW);
    assert_eq!(requirements["payTo"], decoded.payee.to_string());
    assert_eq!(requirements["maxAmountRequired"], "10000");
    assert_eq!(requirements["network"], "lightning-regtest");

    // /pay pays it once, then refuses.
    let (status, paid) = service
        .post("/pay", json!({ "invoice": invoice }).to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paid["paymentHash"], decoded.payment_hash_hex());
    assert_eq!(paid["amountMsat"], "10000");
    let (status, _) = service
        .post("/pay", json!({ "invoice": invoice }).to_string())
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = service
        .post("/pay", json!({ "invoice": "lnbcrt1x" }).to_string())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requirements_refuse_what_this_facilitator_cannot_mint() {
    let service = Running::simulated(|_| {}).await;
    let mut cases = Vec::new();
    let mut request = requirements_request("lightning");
    cases.push(("another network", request.clone(), "not served here"));
    request = requirements_request("lightning-regtest");
    request
        .as_object_mut()
        .expect("object")
        .remove("descriptionHash");
    request["description"] = json!("é".repeat(320));
    cases.push((
        "a seed-flow description over BOLT11's 639 bytes",
        request,
        "at most 639 bytes",
    ));
    request = requirements_request("lightning-regtest");
    request["descriptionHash"] = json!("AB".repeat(32));
    cases.push(("uppercase hash", request, "64 lowercase hex"));
    request = requirements_request("lightning-regtest");
    request["amount"] = json!("0");
    cases.push(("zero amount", request, "at least 1 msat"));
    request = requirements_request("lightning-regtest");
    request["maxTimeoutSeconds"] = json!(86_401);
    cases.push(("expiry over a day", request, "1 to 86400"));
    request = requirements_request("lightning-regtest");
    request["x402Version"] = json!(2);
    cases.push(("version 2", request, "x402Version must be 1"));
    request = requirements_request("lightning-regtest");
    request["amount"] = json!(10_000);
    cases.push(("a number amount", request, "invalid requirements request"));
    // One amount, one spelling: a non-canonical decimal is refused, not minted as 10 msat.
    for amount in ["00010", "010", "00"] {
        request = requirements_request("lightning-regtest");
        request["amount"] = json!(amount);
        cases.push(("a non-canonical amount", request, "without a leading zero"));
    }
    let minted_before = service.mints().await;
    for (case, body, expected) in cases {
        let (status, error) = service.post("/requirements", body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{case}: {message}");
    }
    assert_eq!(service.mints().await, minted_before, "nothing minted");

    // Without the seed flow, an invoice not bound to a request hash is not minted.
    let lnbtc_only = Running::simulated(|config| config.flows = vec![Flow::Lnbtc]).await;
    let mut request = requirements_request("lightning-regtest");
    request
        .as_object_mut()
        .expect("object")
        .remove("descriptionHash");
    let (status, error) = lnbtc_only.post("/requirements", request.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let message = error["error"].as_str().unwrap_or_default();
    assert!(message.contains("descriptionHash is required"), "{message}");
    assert_eq!(lnbtc_only.mints().await, "", "nothing minted");
}

#[tokio::test]
async fn requirements_without_a_description_hash_mint_a_seed_flow_invoice() {
    // The seed flow (on by default): the invoice's only description is BOLT11 `d` =
    // `description`, its expiry maxTimeoutSeconds, its payee the node.
    let service = Running::simulated(|_| {}).await;
    let mut request = requirements_request("lightning-regtest");
    request
        .as_object_mut()
        .expect("object")
        .remove("descriptionHash");
    let (status, requirements) = service.post("/requirements", request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{requirements}");
    let invoice = requirements["extra"]["invoice"].as_str().expect("invoice");
    let decoded = x402_lightning::lnbtc::invoice::decode(invoice).expect("decodes");
    assert_eq!(decoded.amount_msat, Some(10_000));
    assert_eq!(decoded.description_hash, None);
    assert_eq!(decoded.expiry_secs, 60);
    assert_eq!(decoded.created_at, NOW);
    assert_eq!(requirements["payTo"], decoded.payee.to_string());
    assert_eq!(requirements["maxAmountRequired"], "10000");
    assert_eq!(requirements["network"], "lightning-regtest");
    assert_eq!(requirements["description"], "weather");
    let parsed: lightning_invoice::Bolt11Invoice = invoice.parse().expect("BOLT11");
    assert!(
        matches!(
            parsed.description(),
            lightning_invoice::Bolt11InvoiceDescriptionRef::Direct(d) if d.as_inner().0 == "weather"
        ),
        "d = description"
    );
}

/// A node that answers what it is told to.
#[derive(Debug)]
struct Misbehaving {
    key: MockNode,
    fault: Fault,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    WrongAmount,
    WrongHash,
    OtherPayee,
    WrongExpiry,
    NotAnInvoice,
    Timeout,
    Down,
}

impl LightningNode for Misbehaving {
    fn node_id(&self) -> NodeFuture<'_, PublicKey> {
        let key = self.key.node_id();
        Box::pin(async move { Ok(key) })
    }

    fn create_invoice<'a>(&'a self, request: &'a InvoiceRequest) -> NodeFuture<'a, String> {
        Box::pin(async move {
            let (description, description_hash) = match &request.description {
                InvoiceDescription::Hash(hash) => (String::new(), Some(*hash)),
                InvoiceDescription::Text(text) => (text.clone(), None),
            };
            let mut spec = InvoiceSpec {
                network: request.network,
                amount_msat: request.amount_msat,
                description,
                description_hash,
                created_at: Duration::from_secs(NOW),
                expiry: Duration::from_secs(request.expiry_secs),
            };
            let mut signer = self.key.clone();
            match self.fault {
                Fault::WrongAmount => spec.amount_msat += 1,
                Fault::WrongHash if spec.description_hash.is_some() => {
                    spec.description_hash = Some([0x22; 32]);
                }
                Fault::WrongHash => spec.description.push_str(" (altered)"),
                Fault::OtherPayee => signer = MockNode::random(),
                Fault::WrongExpiry => spec.expiry += Duration::from_secs(1),
                Fault::NotAnInvoice => return Ok("lnbcrt1garbage".to_owned()),
                Fault::Timeout => return Err(NodeError::Timeout(250)),
                Fault::Down => return Err(NodeError::Unreachable("connection refused".into())),
            }
            Ok(signer.mint(&spec).expect("mints").invoice.to_string())
        })
    }

    // It only mints (`/requirements`): it knows no invoice and pays nothing.
    fn lookup_invoice<'a>(
        &'a self,
        _payment_hash: &'a [u8; 32],
    ) -> NodeFuture<'a, Option<InvoiceLookup>> {
        Box::pin(async { Ok(None) })
    }

    fn cancel_invoice<'a>(&'a self, _payment_hash: &'a [u8; 32]) -> NodeFuture<'a, Cancelled> {
        Box::pin(async { Ok(Cancelled::Unknown) })
    }

    fn send_payment<'a>(
        &'a self,
        _request: PaymentRequest<'a>,
        _wait: Duration,
    ) -> NodeFuture<'a, PaymentStatus> {
        Box::pin(async {
            Ok(PaymentStatus::Failed {
                reason: "FAILURE_REASON_NO_ROUTE".into(),
            })
        })
    }

    fn track_payment<'a>(
        &'a self,
        _payment_hash: &'a [u8; 32],
        _wait: Duration,
    ) -> NodeFuture<'a, Option<PaymentStatus>> {
        Box::pin(async { Ok(None) })
    }
}

#[tokio::test]
async fn a_node_that_mints_a_wrong_invoice_or_fails_is_a_502_or_504() {
    for (fault, status) in [
        (Fault::WrongAmount, StatusCode::BAD_GATEWAY),
        (Fault::WrongHash, StatusCode::BAD_GATEWAY),
        (Fault::OtherPayee, StatusCode::BAD_GATEWAY),
        (Fault::WrongExpiry, StatusCode::BAD_GATEWAY),
        (Fault::NotAnInvoice, StatusCode::BAD_GATEWAY),
        (Fault::Down, StatusCode::BAD_GATEWAY),
        (Fault::Timeout, StatusCode::GATEWAY_TIMEOUT),
    ] {
        let node = Misbehaving {
            key: MockNode::random(),
            fault,
        };
        let service = Running::start(Arc::new(node), |_| {}).await;
        let (answered, error) = service
            .post(
                "/requirements",
                requirements_request("lightning-regtest").to_string(),
            )
            .await;
        assert_eq!(answered, status, "{fault:?}: {error}");
        assert!(error["error"].is_string(), "{fault:?}");
        assert!(error.get("extra").is_none(), "{fault:?}: no invoice leaves");
        let metrics = service.get("/metrics").await.text().await.expect("text");
        let outcome = if matches!(fault, Fault::Down | Fault::Timeout) {
            "node_error"
        } else {
            "rejected"
        };
        assert!(
            metrics.contains(&format!(
                "x402_facilitator_mints_total{{outcome=\"{outcome}\"}} 1"
            )),
            "{fault:?}: {metrics}"
        );
    }
}

#[tokio::test]
async fn supported_lists_each_network_with_the_nodes_key() {
    let clock = Arc::new(ManualClock::at_unix(Duration::from_secs(NOW)));
    let node = Arc::new(SimulatedNode::random(clock));
    let key = node.pay_to().to_string();
    let service = Running::start(node, |config| {
        config.networks = vec![Network::Bitcoin, Network::Regtest];
    })
    .await;
    let supported: Value = service.get("/supported").await.json().await.expect("JSON");
    assert_eq!(
        supported,
        json!({
            "kinds": [
                {"x402Version": 2, "scheme": "exact", "network": "lnbtc:000000000019d6689c085ae165831e93", "extra": {"payTo": key}},
                {"x402Version": 1, "scheme": "exact", "network": "lightning", "extra": {"payTo": key}},
                {"x402Version": 2, "scheme": "exact", "network": "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328", "extra": {"payTo": key}},
                {"x402Version": 1, "scheme": "exact", "network": "lightning-regtest", "extra": {"payTo": key}},
            ],
            "extensions": [],
            "signers": {},
        })
    );
}

#[tokio::test]
async fn supported_lists_only_the_flows_served() {
    let clock = Arc::new(ManualClock::at_unix(Duration::from_secs(NOW)));
    let node = Arc::new(SimulatedNode::random(clock));
    let key = node.pay_to().to_string();
    let lnbtc_only = Running::start(node.clone(), |config| {
        config.networks = vec![Network::Regtest];
        config.flows = vec![Flow::Lnbtc];
    })
    .await;
    let supported: Value = lnbtc_only
        .get("/supported")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        supported["kinds"],
        json!([
            {"x402Version": 2, "scheme": "exact", "network": "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328", "extra": {"payTo": key}},
        ])
    );
    let v1_only = Running::start(node, |config| {
        config.networks = vec![Network::Regtest];
        config.flows = vec![Flow::V1];
    })
    .await;
    let supported: Value = v1_only.get("/supported").await.json().await.expect("JSON");
    assert_eq!(
        supported["kinds"],
        json!([
            {"x402Version": 1, "scheme": "exact", "network": "lightning-regtest", "extra": {"payTo": key}},
        ])
    );
}

#[tokio::test]
async fn metrics_count_settles_by_outcome_and_reason() {
    let service = Running::simulated(|_| {}).await;
    let node = MockNode::random();
    let proof = Proof::mint(&node, Network::Regtest, NOW);
    for _ in 0..2 {
        service
            .post("/settle", proof.settle_body().to_string())
            .await;
    }
    let mut wrong = proof.settle_body();
    wrong["paymentPayload"]["payload"]["preimage"] = json!("00".repeat(32));
    service.post("/settle", wrong.to_string()).await;
    let response = service.get("/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text"))
    );
    let metrics = response.text().await.expect("text");
    for line in [
        "x402_facilitator_settles_total{outcome=\"success\",reason=\"none\"} 1",
        "x402_facilitator_settles_total{outcome=\"failure\",reason=\"duplicate_settlement\"} 1",
        "x402_facilitator_settles_total{outcome=\"failure\",reason=\"invalid_exact_lnbtc_preimage_hash_mismatch\"} 1",
        "x402_facilitator_store_seconds_count{operation=\"insert\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn healthz_is_503_when_the_store_does_not_answer() {
    let service = Running::simulated(|_| {}).await;
    let healthy: Value = service.get("/healthz").await.json().await.expect("JSON");
    assert_eq!(healthy["status"], "ok");
    service.store.close().await;
    let response = service.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A settle with the store down is no verdict: 503, and the proof is not consumed.
    let proof = Proof::mint(&MockNode::random(), Network::Regtest, NOW);
    let (status, error) = service
        .post("/settle", proof.settle_body().to_string())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("not settled"))
    );
}

#[tokio::test]
async fn a_bad_configuration_is_refused_and_mainnet_invoices_are_never_paid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(dir.path()).await;
    let clock = Arc::new(ManualClock::at_unix(Duration::from_secs(NOW)));
    let node = Arc::new(SimulatedNode::random(clock.clone()));
    for (config, setting) in [
        (
            Config {
                networks: vec![],
                ..Config::default()
            },
            "NETWORKS",
        ),
        (
            Config {
                skew_seconds: 601,
                ..Config::default()
            },
            "SKEW_SECONDS",
        ),
        (
            Config {
                max_body_bytes: 0,
                ..Config::default()
            },
            "MAX_BODY_BYTES",
        ),
        (
            Config {
                purge_interval_seconds: 0,
                ..Config::default()
            },
            "PURGE_INTERVAL",
        ),
        (
            Config {
                api_keys: vec!["a".into(), " ".into()],
                ..Config::default()
            },
            "API_KEYS",
        ),
    ] {
        let refused =
            Service::with_simulated_node(store.clone(), node.clone(), &config, clock.clone())
                .expect_err(setting);
        assert!(
            refused.to_string().contains(setting),
            "{setting}: {refused}"
        );
    }

    // On mainnet the simulated node mints, but its /pay never hands a preimage out.
    let service = Running::simulated(|config| config.networks = vec![Network::Bitcoin]).await;
    let mut request = requirements_request("lightning");
    request["maxTimeoutSeconds"] = json!(60);
    let (status, requirements) = service.post("/requirements", request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{requirements}");
    let invoice = requirements["extra"]["invoice"].as_str().expect("invoice");
    assert!(invoice.starts_with("lnbc1"), "{invoice}");
    let (status, refused) = service
        .post("/pay", json!({ "invoice": invoice }).to_string())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.get("preimage").is_none());
}
