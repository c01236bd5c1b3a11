//! `GET /invoices/{paymentHash}` over real HTTP: the state of an invoice `/requirements` minted
//! (open, paid with its preimage, cancelled by a seed-flow settle), read raw and through the
//! crate's `HttpFacilitator::invoice_status`; the API key; malformed and unknown hashes; deposit
//! and withdrawal invoices never reported, nor any `/requirements` did not record; a store that
//! fails; a node that claims a payment without its proof, or fails; `Cache-Control: no-store`;
//! and no preimage in the log at trace level.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::PublicKey;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use x402_lightning::clock::SystemClock;
use x402_lightning::mock::MockNode;
use x402_lightning::receiver::{InvoiceState, InvoiceStatus};
use x402_lightning::{Facilitator as _, FacilitatorError, HttpFacilitator, Network};
use x402_lightning_facilitator::books::InvoiceRecord;
use x402_lightning_facilitator::config::Flow;
use x402_lightning_facilitator::node::{
    Cancelled, InvoiceLookup, InvoiceRequest, InvoiceState as NodeInvoiceState, LightningNode,
    NodeError, NodeFuture, PaymentRequest, PaymentStatus, SimulatedNode,
};
use x402_lightning_facilitator::store::Store;
use x402_lightning_facilitator::{Config, Service};

use self::common::seed;
use self::common::{Instance, requirements_request, serve_on_loopback, sqlite_store, sqlite_url};

const KEY: &str = "invoice-state-key";

/// A service in process on a loopback port, on SQLite.
struct Running {
    base: String,
    /// Sends the API key with every request when the service has keys.
    client: reqwest::Client,
    /// The service's store, to record an invoice behind its back or to close it.
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// A service on the simulated node (which serves `POST /pay`), as `configure` sets it.
    async fn simulated(configure: impl FnOnce(&mut Config)) -> Running {
        let node = Arc::new(SimulatedNode::random(Arc::new(SystemClock)));
        Running::serve(configure, |store, config| {
            Service::with_simulated_node(store, node, config, Arc::new(SystemClock))
                .expect("a valid configuration")
        })
        .await
    }

    /// A service on `node`.
    async fn on(node: Arc<dyn LightningNode>) -> Running {
        Running::serve(
            |_| {},
            |store, config| {
                Service::with_parts(store, node, config, Arc::new(SystemClock))
                    .expect("a valid configuration")
            },
        )
        .await
    }

    async fn serve(
        configure: impl FnOnce(&mut Config),
        build: impl FnOnce(Arc<dyn Store>, &Config) -> Service,
    ) -> Running {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = sqlite_store(dir.path()).await;
        let mut config = Config::default();
        configure(&mut config);
        let mut headers = HeaderMap::new();
        if !config.api_keys.is_empty() {
            headers.insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {KEY}")).expect("a header value"),
            );
        }
        let service = Arc::new(build(Arc::clone(&store), &config));
        let base = format!("http://{}", serve_on_loopback(service).await);
        Running {
            base,
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("a client"),
            store,
            _dir: dir,
        }
    }

    /// Records `hash` in the books as `/requirements` would have (for a node that mints
    /// nothing).
    async fn record(&self, hash: &str) {
        self.store
            .record_invoice(&InvoiceRecord {
                payment_hash: hash.to_owned(),
                network: Network::Regtest,
                invoice: "lnbcrt-recorded-by-the-test".to_owned(),
                amount_msat: 10_000,
                expires_at: 4_000_000_000,
                resource: "http://shop.example/weather".to_owned(),
                created_at: 0,
            })
            .await
            .expect("records");
    }

    /// `GET /invoices/{hash}`: the status, the answer's `Cache-Control` and its JSON.
    async fn invoice(&self, hash: &str) -> (StatusCode, Option<String>, Value) {
        self.read(self.client.get(format!("{}/invoices/{hash}", self.base)))
            .await
    }

    async fn read(&self, request: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let cache = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        (status, cache, response.json().await.expect("a JSON answer"))
    }

    /// `POST {path}` with `body`: status and JSON.
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `/requirements` on regtest, bound to `description_hash` (hex) or described by text; the
    /// invoice and its payment hash.
    async fn mint(&self, description_hash: Option<&str>) -> (String, String) {
        let request = requirements_request(description_hash);
        let (status, requirements) = self.post("/requirements", &request).await;
        assert_eq!(status, StatusCode::OK, "requirements: {requirements}");
        let invoice = requirements["extra"]["invoice"]
            .as_str()
            .expect("an invoice")
            .to_owned();
        let payment_hash = payment_hash_of(&invoice);
        (invoice, payment_hash)
    }

    /// `POST /pay` of an invoice of the simulated node: its preimage.
    async fn pay(&self, invoice: &str) -> String {
        let (status, paid) = self.post("/pay", &json!({ "invoice": invoice })).await;
        assert_eq!(status, StatusCode::OK, "paid: {paid}");
        paid["preimage"].as_str().expect("a preimage").to_owned()
    }

    /// The crate's HTTP facilitator client of this service, with `key` when given.
    fn facilitator(&self, key: Option<&str>) -> HttpFacilitator {
        let builder = HttpFacilitator::builder(self.base.clone());
        match key {
            Some(key) => builder.bearer_token(key),
            None => builder,
        }
        .build()
        .expect("a facilitator client")
    }
}

/// The payment hash of a BOLT11 invoice, 64 lowercase hex.
fn payment_hash_of(invoice: &str) -> String {
    x402_lightning::lnbtc::invoice::decode(invoice)
        .expect("a BOLT11 invoice")
        .payment_hash_hex()
}

fn hash_bytes(hex: &str) -> [u8; 32] {
    <[u8; 32]>::from_hex(hex).expect("64 hex")
}

fn random_hash() -> String {
    rand::random::<[u8; 32]>().to_lower_hex_string()
}

#[tokio::test]
async fn a_requirements_invoice_is_open_until_paid_then_paid_with_a_preimage_of_its_hash() {
    let service = Running::simulated(|_| {}).await;
    for description_hash in [Some("5a".repeat(32)), None] {
        let (invoice, hash) = service.mint(description_hash.as_deref()).await;
        let (status, _, open) = service.invoice(&hash).await;
        assert_eq!(status, StatusCode::OK, "{description_hash:?}: {open}");
        assert_eq!(
            open,
            json!({ "paymentHash": hash, "state": "open" }),
            "{description_hash:?}: no preimage while open"
        );

        let paid_preimage = service.pay(&invoice).await;
        let (status, _, paid) = service.invoice(&hash).await;
        assert_eq!(status, StatusCode::OK, "{description_hash:?}: {paid}");
        assert_eq!(
            paid,
            json!({ "paymentHash": hash, "state": "paid", "preimage": paid_preimage }),
            "{description_hash:?}"
        );
        let preimage = hash_bytes(paid["preimage"].as_str().expect("a preimage"));
        assert_eq!(
            sha256::Hash::hash(&preimage).to_byte_array(),
            hash_bytes(&hash),
            "{description_hash:?}: the preimage hashes to the payment hash"
        );
    }
}

#[tokio::test]
async fn the_crate_client_reads_open_then_paid_and_accepts_the_answers() {
    let service = Running::simulated(|config| config.api_keys = vec![KEY.into()]).await;
    let facilitator = service.facilitator(Some(KEY));
    for description_hash in [Some("a7".repeat(32)), None] {
        let (invoice, hash) = service.mint(description_hash.as_deref()).await;
        let open = facilitator
            .invoice_status(&hash_bytes(&hash))
            .await
            .expect("an open invoice's status");
        assert_eq!(
            open,
            InvoiceStatus {
                payment_hash: hash.clone(),
                state: InvoiceState::Open,
                preimage: None,
            },
            "{description_hash:?}"
        );

        let preimage = service.pay(&invoice).await;
        let paid = facilitator
            .invoice_status(&hash_bytes(&hash))
            .await
            .expect("a paid invoice's status, checked by the client");
        assert_eq!(
            paid,
            InvoiceStatus {
                payment_hash: hash,
                state: InvoiceState::Paid,
                preimage: Some(preimage),
            },
            "{description_hash:?}"
        );
    }
}

#[tokio::test]
async fn an_invoice_the_seed_flow_settled_is_cancelled_without_a_preimage() {
    let service = Running::simulated(|_| {}).await;
    let key = seed::random_key();
    seed::fund(
        &service.client,
        &service.base,
        &key,
        "lightning-regtest",
        50_000,
    )
    .await;
    let requirements =
        seed::requirements(&service.client, &service.base, Network::Regtest, 10_000).await;
    let hash = payment_hash_of(&requirements.extra.invoice);
    let body = seed::payment_body(&key, &requirements);
    let (status, verified) = service.post("/verify", &body).await;
    assert_eq!(
        (status, &verified["isValid"]),
        (StatusCode::OK, &json!(true)),
        "{verified}"
    );
    let (status, settled) = service.post("/settle", &body).await;
    assert_eq!(
        (status, &settled["success"]),
        (StatusCode::OK, &json!(true)),
        "{settled}"
    );

    let (status, _, cancelled) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(
        cancelled,
        json!({ "paymentHash": hash, "state": "cancelled" }),
        "paid inside the books: nothing to prove over Lightning"
    );
    let through_client = service
        .facilitator(None)
        .invoice_status(&hash_bytes(&hash))
        .await
        .expect("a cancelled invoice's status");
    assert_eq!(through_client.state, InvoiceState::Cancelled);
    assert_eq!(through_client.preimage, None);
}

#[tokio::test]
async fn an_unknown_payment_hash_is_a_404() {
    let service = Running::simulated(|_| {}).await;
    let hash = random_hash();
    let (status, _, error) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(error["error"].is_string(), "{error}");
    assert_eq!(error.as_object().map(|fields| fields.len()), Some(1));

    let answered = service
        .facilitator(None)
        .invoice_status(&hash_bytes(&hash))
        .await;
    assert!(
        matches!(
            answered,
            Err(FacilitatorError::Status { status, .. }) if status == StatusCode::NOT_FOUND
        ),
        "{answered:?}"
    );
}

#[tokio::test]
async fn a_malformed_payment_hash_is_a_400() {
    let service = Running::simulated(|_| {}).await;
    let (_, hash) = service.mint(None).await;
    for malformed in [
        hash[..63].to_owned(),
        format!("{hash}0"),
        hash.to_uppercase(),
        format!("{}A", &hash[..63]),
        "zz".repeat(32),
        format!("0x{}", &hash[..62]),
        format!("{}%20", &hash[..61]),
        "%FF".repeat(32),
        "é".repeat(32),
    ] {
        let (status, cache, error) = service.invoice(&malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed}: {error}");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("64 lowercase hex")),
            "{malformed}: {error}"
        );
        assert_eq!(cache.as_deref(), Some("no-store"), "{malformed}");
    }
}

#[tokio::test]
async fn the_api_key_is_required_when_keys_are_set() {
    let service = Running::simulated(|config| config.api_keys = vec![KEY.into()]).await;
    let (_, hash) = service.mint(None).await;
    let bare = reqwest::Client::new();
    let url = format!("{}/invoices/{hash}", service.base);
    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Basic {KEY}")),
        Some("Bearer ".to_owned()),
    ] {
        let mut request = bare.get(&url);
        if let Some(auth) = &auth {
            request = request.header(AUTHORIZATION, auth);
        }
        let response = request.send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let error: Value = response.json().await.expect("JSON");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("API key")),
            "{auth:?}: {error}"
        );
    }
    // The key is checked before the path: a request without it learns nothing, not even that
    // its hash is malformed.
    let response = bare
        .get(format!("{}/invoices/NOT-A-HASH", service.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let with_key = bare.get(&url).bearer_auth(KEY).send().await.expect("GET");
    assert_eq!(with_key.status(), StatusCode::OK);
    let refused = service
        .facilitator(Some("wrong"))
        .invoice_status(&hash_bytes(&hash))
        .await;
    assert!(
        matches!(
            refused,
            Err(FacilitatorError::Status { status, .. }) if status == StatusCode::UNAUTHORIZED
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_deposit_invoice_is_a_404_even_after_it_is_paid() {
    let service = Running::simulated(|_| {}).await;
    let key = seed::random_key();
    let deposit = seed::deposit_invoice(
        &service.client,
        &service.base,
        "lightning-regtest",
        &key.account(),
        20_000,
    )
    .await;
    let hash = deposit["paymentHash"].as_str().expect("a hash").to_owned();
    let (_, _, unknown) = service.invoice(&random_hash()).await;

    let (status, _, pending) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "pending: {pending}");
    assert_eq!(pending, unknown, "as if the node did not know it");

    let invoice = deposit["invoice"].as_str().expect("an invoice");
    service.pay(invoice).await;
    let (status, _, paid) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "paid: {paid}");
    assert_eq!(paid, unknown);

    // Credited (the read asks the node), and still not reported.
    let credited: Value = service
        .client
        .get(format!("{}/accounts/deposits/{hash}", service.base))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(credited["state"], "credited", "{credited}");
    let (status, _, after) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "credited: {after}");
    assert_eq!(after, unknown);
}

#[tokio::test]
async fn a_withdrawal_invoice_is_a_404() {
    let service = Running::simulated(|_| {}).await;
    let (status, external) = service
        .post(
            "/pay/external",
            &json!({ "amount": "5000", "network": "lightning-regtest" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{external}");
    let hash = external["paymentHash"].as_str().expect("a hash");
    let (status, _, error) = service.invoice(hash).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another node's invoice: {error}"
    );
}

#[tokio::test]
async fn every_answer_is_no_store() {
    let service = Running::simulated(|_| {}).await;
    let (invoice, hash) = service.mint(Some(&"0c".repeat(32))).await;
    let (status, open, _) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::OK);
    service.pay(&invoice).await;
    let (status, paid, _) = service.invoice(&hash).await;
    assert_eq!(status, StatusCode::OK);
    let (status, unknown, _) = service.invoice(&random_hash()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, malformed, _) = service.invoice("nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for (what, cache) in [
        ("open", open),
        ("paid", paid),
        ("unknown", unknown),
        ("malformed", malformed),
    ] {
        assert_eq!(cache.as_deref(), Some("no-store"), "{what}");
    }
}

#[tokio::test]
async fn the_route_is_served_whatever_the_flows() {
    for flows in [
        vec![Flow::Lnbtc],
        vec![Flow::V1],
        vec![Flow::V1, Flow::Lnbtc],
    ] {
        let service = Running::simulated(|config| config.flows = flows.clone()).await;
        let (invoice, hash) = service.mint(Some(&"3e".repeat(32))).await;
        let (status, _, open) = service.invoice(&hash).await;
        assert_eq!(status, StatusCode::OK, "{flows:?}: {open}");
        assert_eq!(open["state"], "open", "{flows:?}");
        let preimage = service.pay(&invoice).await;
        let (_, _, paid) = service.invoice(&hash).await;
        assert_eq!(paid["state"], "paid", "{flows:?}");
        assert_eq!(paid["preimage"], json!(preimage), "{flows:?}");
    }
}

/// A node whose lookup answers what the test says; it mints nothing and pays nothing.
#[derive(Debug)]
struct Scripted {
    key: MockNode,
    lookup: Lookup,
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// Reported with this state and preimage.
    Reports(NodeInvoiceState, Option<[u8; 32]>),
    Timeout,
    Down,
}

impl LightningNode for Scripted {
    fn node_id(&self) -> NodeFuture<'_, PublicKey> {
        let key = self.key.node_id();
        Box::pin(async move { Ok(key) })
    }

    fn create_invoice<'a>(&'a self, _request: &'a InvoiceRequest) -> NodeFuture<'a, String> {
        Box::pin(async { Err(NodeError::Refused("a scripted node mints nothing".into())) })
    }

    fn lookup_invoice<'a>(
        &'a self,
        _payment_hash: &'a [u8; 32],
    ) -> NodeFuture<'a, Option<InvoiceLookup>> {
        let lookup = self.lookup;
        Box::pin(async move {
            match lookup {
                Lookup::Reports(state, preimage) => Ok(Some(InvoiceLookup {
                    state,
                    preimage,
                    amount_paid_msat: 0,
                })),
                Lookup::Timeout => Err(NodeError::Timeout(250)),
                Lookup::Down => Err(NodeError::Unreachable("connection refused".into())),
            }
        })
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

/// `GET /invoices/{hash}` against a scripted node, `hash` recorded as `/requirements` would
/// have: status and JSON.
async fn scripted(lookup: Lookup, hash: &str) -> (StatusCode, Value) {
    let node = Scripted {
        key: MockNode::random(),
        lookup,
    };
    let service = Running::on(Arc::new(node)).await;
    service.record(hash).await;
    let (status, cache, answer) = service.invoice(hash).await;
    assert_eq!(cache.as_deref(), Some("no-store"), "{lookup:?}");
    (status, answer)
}

#[tokio::test]
async fn a_held_payment_is_still_open() {
    let preimage: [u8; 32] = rand::random();
    let hash = sha256::Hash::hash(&preimage)
        .to_byte_array()
        .to_lower_hex_string();
    let (status, answer) = scripted(
        Lookup::Reports(NodeInvoiceState::Accepted, Some(preimage)),
        &hash,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({ "paymentHash": hash, "state": "open" }),
        "held is not settled: no preimage"
    );
}

#[tokio::test]
async fn a_node_reporting_a_payment_without_a_valid_preimage_is_a_502() {
    let preimage: [u8; 32] = rand::random();
    let hash = sha256::Hash::hash(&preimage)
        .to_byte_array()
        .to_lower_hex_string();
    let (status, answer) = scripted(
        Lookup::Reports(NodeInvoiceState::Settled, Some(preimage)),
        &hash,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the proof checks: {answer}");
    for wrong in [None, Some([0x42; 32])] {
        let (status, answer) =
            scripted(Lookup::Reports(NodeInvoiceState::Settled, wrong), &hash).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{wrong:?}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        assert!(answer.get("state").is_none(), "never paid without proof");
    }
}

#[tokio::test]
async fn a_node_failure_is_a_502_and_its_timeout_a_504() {
    let hash = random_hash();
    for (lookup, expected) in [
        (Lookup::Down, StatusCode::BAD_GATEWAY),
        (Lookup::Timeout, StatusCode::GATEWAY_TIMEOUT),
    ] {
        let (status, answer) = scripted(lookup, &hash).await;
        assert_eq!(status, expected, "{lookup:?}: {answer}");
        assert!(answer["error"].is_string(), "{lookup:?}: {answer}");
    }
}

/// The books are asked before the node: an invoice `/requirements` did not record is the
/// unknown hash's 404 whatever the node would say, paid with a valid preimage, or down.
#[tokio::test]
async fn an_unrecorded_invoice_is_a_404_before_the_node_is_asked() {
    let preimage: [u8; 32] = rand::random();
    let hash = sha256::Hash::hash(&preimage)
        .to_byte_array()
        .to_lower_hex_string();
    for lookup in [
        Lookup::Reports(NodeInvoiceState::Settled, Some(preimage)),
        Lookup::Reports(NodeInvoiceState::Open, None),
        Lookup::Down,
        Lookup::Timeout,
    ] {
        let service = Running::on(Arc::new(Scripted {
            key: MockNode::random(),
            lookup,
        }))
        .await;
        let (status, cache, answer) = service.invoice(&hash).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{lookup:?}: {answer}");
        assert_eq!(cache.as_deref(), Some("no-store"), "{lookup:?}");
        assert_eq!(answer.as_object().map(|fields| fields.len()), Some(1));
        assert!(answer["error"].is_string(), "{lookup:?}: {answer}");
    }
}

/// A store that fails: `GET /invoices` is a 503 (never the node's answer, never a 404), and
/// `/requirements` hands out no invoice it could not record, whatever the flows.
#[tokio::test]
async fn a_store_failure_is_a_503_and_no_unrecorded_invoice_is_handed_out() {
    for flows in [vec![Flow::Lnbtc], vec![Flow::V1, Flow::Lnbtc]] {
        let service = Running::simulated(|config| config.flows = flows.clone()).await;
        let (invoice, hash) = service.mint(Some(&"4f".repeat(32))).await;
        service.pay(&invoice).await;
        service.store.close().await;

        let (status, cache, answer) = service.invoice(&hash).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{flows:?}: {answer}"
        );
        assert_eq!(cache.as_deref(), Some("no-store"), "{flows:?}");
        assert!(answer.get("preimage").is_none(), "{flows:?}: {answer}");

        let (status, answer) = service
            .post(
                "/requirements",
                &requirements_request(Some(&"4f".repeat(32))),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{flows:?}: {answer}"
        );
        assert!(answer.get("extra").is_none(), "{flows:?}: {answer}");
    }
}

/// The binary at `RUST_LOG=trace`: an invoice read open, paid and read again never puts its
/// preimage in the log.
#[tokio::test]
async fn no_preimage_reaches_the_log_even_at_trace_level() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = sqlite_url(dir.path());
    let instance = Instance::start(
        dir.path(),
        &[
            ("X402_FACILITATOR_DATABASE_URL", &database),
            ("X402_FACILITATOR_API_KEYS", KEY),
            ("RUST_LOG", "trace"),
        ],
    );
    let client = reqwest::Client::new();
    let minted: Value = client
        .post(instance.url("/requirements"))
        .bearer_auth(KEY)
        .json(&requirements_request(Some(&"6d".repeat(32))))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let invoice = minted["extra"]["invoice"].as_str().expect("an invoice");
    let hash = payment_hash_of(invoice);
    let read = || async {
        client
            .get(instance.url(&format!("/invoices/{hash}")))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("GET")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    assert_eq!(read().await["state"], "open");
    let paid: Value = client
        .post(instance.url("/pay"))
        .json(&json!({ "invoice": invoice }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let preimage = paid["preimage"].as_str().expect("a preimage").to_owned();
    for _ in 0..2 {
        assert_eq!(read().await["preimage"], json!(preimage));
    }
    let log = instance.log_text();
    assert!(log.contains(&hash), "the log names the payment hash");
    assert!(!log.contains(&preimage), "the preimage is in the log");
    assert!(
        !log.contains(&preimage.to_uppercase()),
        "the preimage is in the log"
    );
}

/// The binary on PostgreSQL (the deposit lookup is the store's): a deposit's invoice, paid, is
/// a 404, and a `/requirements` invoice, paid, is reported with its preimage.
#[tokio::test]
async fn on_postgresql_a_paid_deposit_is_a_404_and_a_paid_requirement_is_paid() {
    let Some(base) = common::postgres_url(
        "on_postgresql_a_paid_deposit_is_a_404_and_a_paid_requirement_is_paid",
    ) else {
        return;
    };
    let schema = common::PgSchema::create(&base).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let instance = Instance::start(
        dir.path(),
        &[
            ("X402_FACILITATOR_DATABASE_URL", &schema.url),
            ("X402_FACILITATOR_API_KEYS", KEY),
        ],
    );
    let base_url = instance.url("");
    let client = reqwest::Client::new();
    let status_of = |hash: String| {
        let request = client
            .get(instance.url(&format!("/invoices/{hash}")))
            .bearer_auth(KEY);
        async move {
            let response = request.send().await.expect("GET");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };

    let key = seed::random_key();
    let deposit = seed::deposit_invoice(
        &client,
        &base_url,
        "lightning-regtest",
        &key.account(),
        20_000,
    )
    .await;
    let deposit_hash = deposit["paymentHash"].as_str().expect("a hash").to_owned();
    let deposit_invoice = deposit["invoice"].as_str().expect("an invoice");
    assert_eq!(
        seed::pay_simulated(&client, &base_url, deposit_invoice).await,
        200
    );
    let (status, answer) = status_of(deposit_hash).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a paid deposit: {answer}");

    let minted: Value = client
        .post(instance.url("/requirements"))
        .bearer_auth(KEY)
        .json(&requirements_request(None))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let invoice = minted["extra"]["invoice"].as_str().expect("an invoice");
    let hash = payment_hash_of(invoice);
    assert_eq!(seed::pay_simulated(&client, &base_url, invoice).await, 200);
    let (status, answer) = status_of(hash.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["paymentHash"], json!(hash));
    assert_eq!(answer["state"], "paid");
    let preimage = hash_bytes(answer["preimage"].as_str().expect("a preimage"));
    assert_eq!(
        sha256::Hash::hash(&preimage).to_byte_array(),
        hash_bytes(&hash)
    );

    instance.kill();
    schema.drop_all().await;
}
