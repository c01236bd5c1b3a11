//! `PROTOCOL.md` Part 3 (the seed flow for real: prepaid accounts in the facilitator service),
//! one named test per row and rule, and one per facilitator MUST of the seed document
//! (`seeds/scheme_exact_lightning.md`, "Security Considerations"), each over real HTTP against
//! the service binary (SQLite, simulated node).
//!
//! Clock-dependent rules (invoice and deposit expiry, hold timeouts, the read signature's skew)
//! run on instances whose clock is pinned (`X402_FACILITATOR_TEST_NOW`): a first instance at
//! `T` and a second one on the same SQLite file and node key at a later `T`. The simulated
//! node's memory dies with its process, so the later instance's node knows none of the earlier
//! invoices: only what the books (the shared file) hold is carried over.
//!
//! Where a rule can only be observed inside the books (the invoice metadata, the journal, the
//! preimage of a settle), the test reads the SQLite file itself, read-only.

mod common;

use common::seed::sign_raw;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use common::Instance;
use common::seed::{random_key, unix_now};
use serde_json::{Value, json};
use sqlx::Row as _;
use x402_lightning::Network;
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning::types::RequirementsRequest;
use x402_lightning::v1::AccountKey;

const REGTEST: &str = "lightning-regtest";
const REGTEST_ID: &str = "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328";
const TESTNET: &str = "lightning-testnet";
const TESTNET_ID: &str = "lnbtc:000000000933ea01ad0ee984209779ba";

/// The node key every instance of these tests is given (`X402_FACILITATOR_NODE_KEY`): instances
/// sharing a store are one receiver, and a test can forge invoices of the node.
const NODE_KEY: &str = "9f1c3e5a7b2d4f6081a3c5e7092b4d6f8a1c3e5b7d9f0a2c4e6081b3d5f7092b";

/// A pinned clock for the tests that need one: invoices are minted at this time.
const T: u64 = 1_750_000_000;

/// The default skew (`X402_FACILITATOR_SKEW_SECONDS`).
const SKEW: u64 = 60;

/// The longest a test waits for the service's background work.
const BACKGROUND_LIMIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// The harness: a running service and its calls.
// ---------------------------------------------------------------------------------------------

/// A running service: the binary on a SQLite file in its directory.
struct Svc {
    instance: Instance,
    base: String,
    client: reqwest::Client,
    db: PathBuf,
    /// Every response body this test received (to search for secrets).
    seen: std::sync::Mutex<Vec<String>>,
}

impl Svc {
    /// The binary on `dir`'s SQLite file with [`NODE_KEY`] and `env` on top.
    fn start(dir: &Path, env: &[(&str, &str)]) -> Svc {
        let url = common::sqlite_url(dir);
        let mut all = vec![
            ("X402_FACILITATOR_DATABASE_URL", url.as_str()),
            ("X402_FACILITATOR_NODE_KEY", NODE_KEY),
        ];
        all.extend_from_slice(env);
        let instance = Instance::start(dir, &all);
        Svc {
            base: instance.url(""),
            instance,
            client: reqwest::Client::new(),
            db: dir.join("replay.db"),
            seen: std::sync::Mutex::default(),
        }
    }

    /// The binary with its clock pinned at `now`.
    fn pinned(dir: &Path, now: u64, env: &[(&str, &str)]) -> Svc {
        let now = now.to_string();
        let mut all = vec![("X402_FACILITATOR_TEST_NOW", now.as_str())];
        all.extend_from_slice(env);
        Svc::start(dir, &all)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(&self, response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        self.seen.lock().expect("lock").push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POSTs JSON; status and JSON (`null` when not JSON).
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("the service answers");
        self.answer(response).await
    }

    /// POSTs JSON with `Authorization: Bearer <key>`.
    async fn post_bearer(&self, path: &str, body: &Value, key: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("the service answers");
        self.answer(response).await
    }

    /// POSTs raw bytes as JSON.
    async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the service answers");
        self.answer(response).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("the service answers");
        self.answer(response).await
    }

    /// GETs with `X402-Account-Signature` values (none, one or several).
    async fn get_signed(&self, path: &str, signatures: &[&str]) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        for value in signatures {
            request = request.header("X402-Account-Signature", *value);
        }
        let response = request.send().await.expect("the service answers");
        self.answer(response).await
    }

    /// A signed read of `key`'s account on `network_id`, signed at `unix`.
    async fn account_at(&self, key: &AccountKey, network_id: &str, unix: u64) -> (u16, Value) {
        let signature = key.account_read_signature(network_id, unix);
        self.get_signed(
            &format!("/accounts/{network_id}/{}", key.account()),
            &[&signature],
        )
        .await
    }

    /// A signed read now.
    async fn account(&self, key: &AccountKey, network_id: &str) -> (u16, Value) {
        self.account_at(key, network_id, unix_now()).await
    }

    /// `(balance, held, available)` of an existing account, read at `unix`.
    async fn balances_at(&self, key: &AccountKey, network_id: &str, unix: u64) -> (u64, u64, u64) {
        let (status, account) = self.account_at(key, network_id, unix).await;
        assert_eq!(status, 200, "the account reads: {account}");
        let msat = |name: &str| -> u64 {
            account[name]
                .as_str()
                .and_then(|text| text.parse().ok())
                .unwrap_or_else(|| panic!("{name} is an msat string: {account}"))
        };
        let (balance, held, available) = (msat("balance"), msat("held"), msat("available"));
        assert_eq!(
            available,
            balance - held,
            "available = balance - held: {account}"
        );
        (balance, held, available)
    }

    async fn balances(&self, key: &AccountKey, network_id: &str) -> (u64, u64, u64) {
        self.balances_at(key, network_id, unix_now()).await
    }

    /// A deposit invoice (201 asserted).
    async fn deposit(&self, network_id: &str, account: &str, amount: u64) -> Value {
        let (status, deposit) = self
            .post(
                "/accounts/deposits",
                &json!({ "network": network_id, "account": account, "amount": amount.to_string() }),
            )
            .await;
        assert_eq!(status, 201, "a deposit invoice: {deposit}");
        deposit
    }

    /// `POST /pay` of an invoice of the simulated node.
    async fn pay(&self, invoice: &str) -> (u16, Value) {
        self.post("/pay", &json!({ "invoice": invoice })).await
    }

    /// Funds `key` on `network_id` (deposit, pay, read credited); the deposit's payment hash.
    async fn fund(&self, key: &AccountKey, network_id: &str, amount: u64) -> String {
        common::seed::fund(&self.client, &self.base, key, network_id, amount).await
    }

    /// `/requirements` for `request` (200 asserted), as JSON.
    async fn requirements_for(&self, request: &RequirementsRequest) -> Value {
        let (status, requirements) = self
            .post(
                "/requirements",
                &serde_json::to_value(request).expect("serializes"),
            )
            .await;
        assert_eq!(status, 200, "requirements: {requirements}");
        requirements
    }

    /// Requirements for `amount` on `network`, described by text, 60 s.
    async fn requirements(&self, network: Network, amount: u64) -> Value {
        self.requirements_for(&text_request(network, amount, 60))
            .await
    }

    /// Requirements bound to a fresh random request hash (`descriptionHash`) expiring after
    /// `expiry` seconds; and the hash.
    async fn hashed_requirements(
        &self,
        network: Network,
        amount: u64,
        expiry: u64,
    ) -> (Value, String) {
        let hash: [u8; 32] = rand::random();
        let hash = hash.to_lower_hex_string();
        let mut request = RequirementsRequest::new(network, amount, "http://127.0.0.1/hashed");
        request.max_timeout_seconds = expiry;
        request.description_hash = Some(hash.clone());
        (self.requirements_for(&request).await, hash)
    }

    async fn verify(&self, body: &Value) -> Value {
        let (status, verdict) = self.post("/verify", body).await;
        assert_eq!(status, 200, "a verdict: {verdict}");
        verdict
    }

    async fn settle(&self, body: &Value) -> Value {
        let (status, verdict) = self.post("/settle", body).await;
        assert_eq!(status, 200, "a verdict: {verdict}");
        verdict
    }

    /// An invoice of the simulated other node (`POST /pay/external`): invoice, payment hash.
    async fn external(&self, amount: u64, network_id: &str, outcome: &str) -> (String, String) {
        let (status, external) = self
            .post(
                "/pay/external",
                &json!({ "amount": amount.to_string(), "network": network_id, "outcome": outcome }),
            )
            .await;
        assert_eq!(status, 201, "an external invoice: {external}");
        (
            external["invoice"].as_str().expect("invoice").to_owned(),
            external["paymentHash"].as_str().expect("hash").to_owned(),
        )
    }

    /// A signed withdrawal.
    async fn withdraw(
        &self,
        key: &AccountKey,
        network_id: &str,
        invoice: &str,
        max_fee: u64,
    ) -> (u16, Value) {
        self.post(
            "/accounts/withdrawals",
            &json!({
                "network": network_id,
                "account": key.account(),
                "invoice": invoice,
                "maxFeeMsat": max_fee.to_string(),
                "signature": key.sign_withdrawal(invoice, max_fee),
            }),
        )
        .await
    }

    /// A signed read of a withdrawal.
    async fn withdrawal(
        &self,
        key: &AccountKey,
        network_id: &str,
        payment_hash: &str,
    ) -> (u16, Value) {
        let signature = key.account_read_signature(network_id, unix_now());
        self.get_signed(
            &format!(
                "/accounts/{network_id}/{}/withdrawals/{payment_hash}",
                key.account()
            ),
            &[&signature],
        )
        .await
    }

    /// `GET /supported`.
    async fn supported(&self) -> Value {
        let (status, supported) = self.get("/supported").await;
        assert_eq!(status, 200, "{supported}");
        supported
    }

    /// A read-only connection to the service's SQLite file.
    async fn books(&self) -> sqlx::SqlitePool {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&self.db)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("the SQLite file opens")
    }

    /// The preimage the books recorded for a seed-flow payment.
    async fn recorded_preimage(&self, payment_hash: &str) -> String {
        let pool = self.books().await;
        let row = sqlx::query("SELECT preimage FROM payments WHERE payment_hash = $1")
            .bind(payment_hash)
            .fetch_one(&pool)
            .await
            .expect("the payment is recorded");
        let preimage: String = row.get(0);
        pool.close().await;
        preimage
    }

    /// Checks the books: for every account, balance = credits − debits and held = holds −
    /// releases in the journal, balance ≥ held ≥ 0.
    async fn audit(&self) {
        let pool = self.books().await;
        let rows = sqlx::query(
            "SELECT a.network, a.account, a.balance_msat, a.held_msat, \
             COALESCE((SELECT SUM(CASE kind WHEN 'credit' THEN amount_msat WHEN 'debit' THEN -amount_msat ELSE 0 END) \
               FROM journal j WHERE j.network = a.network AND j.account = a.account), 0), \
             COALESCE((SELECT SUM(CASE kind WHEN 'hold' THEN amount_msat WHEN 'release' THEN -amount_msat ELSE 0 END) \
               FROM journal j WHERE j.network = a.network AND j.account = a.account), 0) \
             FROM accounts a",
        )
        .fetch_all(&pool)
        .await
        .expect("the books read");
        for row in rows {
            let (network, account): (String, String) = (row.get(0), row.get(1));
            let (balance, held, journal_balance, journal_held): (i64, i64, i64, i64) =
                (row.get(2), row.get(3), row.get(4), row.get(5));
            assert_eq!(
                balance, journal_balance,
                "{network} {account}: balance = credits - debits"
            );
            assert_eq!(
                held, journal_held,
                "{network} {account}: held = holds - releases"
            );
            assert!(
                0 <= held && held <= balance,
                "{network} {account}: 0 <= held <= balance"
            );
        }
        pool.close().await;
    }

    /// Every response body received so far.
    fn bodies(&self) -> String {
        self.seen.lock().expect("lock").join("\n")
    }
}

/// A `/requirements` request described by text.
fn text_request(network: Network, amount: u64, expiry: u64) -> RequirementsRequest {
    let mut request = RequirementsRequest::new(network, amount, "http://127.0.0.1/paid");
    request.description = "a paid test resource".into();
    request.max_timeout_seconds = expiry;
    request
}

/// The `/verify` and `/settle` body paying `requirements` (JSON) with `key`: the payload's
/// network written as the requirements write it.
fn body(key: &AccountKey, requirements: &Value) -> Value {
    let invoice = requirements["extra"]["invoice"]
        .as_str()
        .expect("an invoice");
    json!({
        "x402Version": 1,
        "paymentPayload": {
            "x402Version": 1,
            "scheme": "exact",
            "network": requirements["network"],
            "payload": {
                "invoice": invoice,
                "signature": sign_raw(key, invoice),
                "from": key.account(),
            },
        },
        "paymentRequirements": requirements,
    })
}

/// `body` with `pointer` set to `value`.
fn with(body: &Value, pointer: &str, value: Value) -> Value {
    let mut body = body.clone();
    *body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is in the body")) = value;
    body
}

/// `body` without the member at `pointer`.
fn without(body: &Value, pointer: &str) -> Value {
    let mut body = body.clone();
    let (parent, name) = pointer.rsplit_once('/').expect("a pointer");
    body.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("an object")
        .remove(name)
        .unwrap_or_else(|| panic!("{pointer} is in the body"));
    body
}

/// `body` paying `invoice` instead (payload and requirements), signed by `key`.
fn paying(body: &Value, key: &AccountKey, invoice: &str) -> Value {
    let body = with(body, "/paymentPayload/payload/invoice", json!(invoice));
    let body = with(&body, "/paymentRequirements/extra/invoice", json!(invoice));
    let body = with(&body, "/paymentPayload/payload/from", json!(key.account()));
    with(
        &body,
        "/paymentPayload/payload/signature",
        json!(sign_raw(key, invoice)),
    )
}

/// `body` with the payload's signature made by `other` (still `from` the original account).
fn signed_by(body: &Value, other: &AccountKey) -> Value {
    let invoice = body["paymentPayload"]["payload"]["invoice"]
        .as_str()
        .expect("invoice");
    with(
        body,
        "/paymentPayload/payload/signature",
        json!(sign_raw(other, invoice)),
    )
}

fn invoice_of(requirements: &Value) -> String {
    requirements["extra"]["invoice"]
        .as_str()
        .expect("an invoice")
        .to_owned()
}

fn hash_of(invoice: &str) -> String {
    decode(invoice).expect("decodes").payment_hash_hex()
}

/// Asserts an invalid verdict with `reason`, naming `payer` (or no payer).
fn assert_invalid(verdict: &Value, reason: &str, payer: Option<&str>, case: &str) {
    let mut expected = json!({ "isValid": false, "invalidReason": reason });
    if let Some(payer) = payer {
        expected["payer"] = json!(payer);
    }
    assert_eq!(verdict, &expected, "{case}");
}

/// Asserts a failed settle with `reason` on `network`, naming `payer` (or no payer).
fn assert_refused(verdict: &Value, reason: &str, network: &str, payer: Option<&str>, case: &str) {
    let mut expected = json!({
        "success": false,
        "errorReason": reason,
        "transaction": "",
        "network": network,
    });
    if let Some(payer) = payer {
        expected["payer"] = json!(payer);
    }
    assert_eq!(verdict, &expected, "{case}");
}

/// The high-S twin of a low-S compact signature (s' = n − s): the same signature, another
/// spelling.
fn high_s_twin(signature: &str) -> String {
    let low = <[u8; 64]>::from_hex(signature).expect("hex");
    let order = bitcoin::secp256k1::constants::CURVE_ORDER;
    let mut high = low;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = i16::from(order[i]) - i16::from(low[32 + i]) - borrow;
        borrow = i16::from(diff < 0);
        high[32 + i] = u8::try_from(diff.rem_euclid(256)).expect("a byte");
    }
    high.to_lower_hex_string()
}

/// `signature` with its last hex digit changed.
fn tampered(signature: &str) -> String {
    let mut text = signature.to_owned();
    let last = text.pop().expect("not empty");
    text.push(if last == '0' { '1' } else { '0' });
    text
}

/// The node's public key (66 hex).
fn node_id() -> String {
    MockNode::from_secret_hex(NODE_KEY)
        .expect("a valid key")
        .node_id()
        .to_string()
}

/// Another node's key (66 hex).
fn other_node_id() -> String {
    MockNode::random().node_id().to_string()
}

/// An invoice of `node` on `network` for `amount` msat, created at `created_at`, expiring
/// after `expiry` s, described by text; and its preimage (hex).
fn mint_with(
    node: &MockNode,
    network: Network,
    amount: u64,
    created_at: u64,
    expiry: u64,
) -> (String, String) {
    let minted = node
        .mint(&InvoiceSpec {
            network,
            amount_msat: amount,
            description: "minted by the test".into(),
            description_hash: None,
            created_at: Duration::from_secs(created_at),
            expiry: Duration::from_secs(expiry),
        })
        .expect("mints");
    (
        minted.invoice.to_string(),
        minted.preimage.to_lower_hex_string(),
    )
}

/// A BOLT11 invoice signed by `secret_hex` with any terms (an amountless one included), for a
/// given payment hash.
fn forge(
    secret_hex: &str,
    network: Network,
    amount: Option<u64>,
    payment_hash: [u8; 32],
    created_at: u64,
    expiry: u64,
) -> String {
    let secret =
        SecretKey::from_slice(&<[u8; 32]>::from_hex(secret_hex).expect("hex")).expect("a key");
    let secp = Secp256k1::new();
    let mut builder = lightning_invoice::InvoiceBuilder::new(network.currency())
        .description("forged by the test".into())
        .payment_hash(sha256::Hash::from_byte_array(payment_hash))
        .payment_secret(lightning_invoice::PaymentSecret([7; 32]))
        .duration_since_epoch(Duration::from_secs(created_at))
        .expiry_time(Duration::from_secs(expiry))
        .min_final_cltv_expiry_delta(18);
    if let Some(amount) = amount {
        builder = builder.amount_milli_satoshis(amount);
    }
    builder
        .build_signed(|message| secp.sign_ecdsa_recoverable(message, &secret))
        .expect("builds")
        .to_string()
}

/// The BOLT11 `d` of an invoice (`None` when it has a hash description instead).
fn bolt11_description(invoice: &str) -> Option<String> {
    let parsed: lightning_invoice::Bolt11Invoice = invoice.parse().expect("BOLT11");
    match parsed.description() {
        lightning_invoice::Bolt11InvoiceDescriptionRef::Direct(text) => {
            Some(text.as_inner().0.clone())
        }
        lightning_invoice::Bolt11InvoiceDescriptionRef::Hash(_) => None,
    }
}

/// The `/settle` body of an lnbtc (x402 v2) proof for an invoice the service minted with
/// `descriptionHash` = `request_hash`, paid with `preimage`.
fn lnbtc_body(requirements: &Value, request_hash: &str, preimage: &str) -> Value {
    use x402_lightning::lnbtc::types::{
        LnbtcExtra, PaymentPayload, PaymentRequirements, SettleRequest,
    };
    let network: Network = requirements["network"]
        .as_str()
        .and_then(|name| name.parse().ok())
        .expect("a v1 network name");
    let lnbtc = PaymentRequirements::lnbtc(
        network,
        requirements["maxAmountRequired"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .expect("an amount"),
        requirements["payTo"].as_str().expect("payTo"),
        requirements["maxTimeoutSeconds"]
            .as_u64()
            .expect("a timeout"),
        LnbtcExtra {
            invoice: invoice_of(requirements),
            request_hash: request_hash.to_owned(),
            request_binding_profile: "http:1".into(),
            request_binding_params: json!({ "headers": [] }),
        },
    );
    let payload = serde_json::to_value(PaymentPayload::lnbtc(
        None,
        lnbtc.clone(),
        preimage.to_owned(),
    ))
    .expect("serializes");
    serde_json::to_value(SettleRequest::new(payload, &lnbtc)).expect("serializes")
}

/// A service, an account funded with `funds` on regtest, requirements for `amount` and the
/// body paying them.
async fn funded(dir: &Path, funds: u64, amount: u64) -> (Svc, AccountKey, Value, Value) {
    let service = Svc::start(dir, &[]);
    let key = random_key();
    service.fund(&key, REGTEST, funds).await;
    let requirements = service.requirements(Network::Regtest, amount).await;
    let body = body(&key, &requirements);
    (service, key, requirements, body)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Polls `check` every 200 ms until it holds or [`BACKGROUND_LIMIT`] passes.
macro_rules! eventually {
    ($check:expr) => {{
        let deadline = Instant::now() + BACKGROUND_LIMIT;
        loop {
            if $check {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// POST /requirements: every invoice recorded; `d` = description.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn requirements_records_every_invoice_with_and_without_description_hash() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 100_000).await;

    let described = service.requirements(Network::Regtest, 10_000).await;
    let (hashed, _) = service
        .hashed_requirements(Network::Regtest, 10_000, 300)
        .await;
    for (case, requirements) in [("with d", &described), ("with descriptionHash", &hashed)] {
        let verdict = service.verify(&body(&key, requirements)).await;
        assert_eq!(
            verdict,
            json!({ "isValid": true, "payer": key.account() }),
            "{case}: a recorded invoice is payable"
        );
        let settled = service.settle(&body(&key, requirements)).await;
        assert_eq!(settled["success"], true, "{case}: {settled}");
    }
    assert_eq!(service.balances(&key, REGTEST).await, (80_000, 0, 80_000));
}

#[tokio::test]
async fn requirements_without_description_hash_carries_the_description_as_bolt11_d() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let mut request = text_request(Network::Regtest, 12_345, 120);
    request.description = "Batch AI inference request".into();
    let requirements = service.requirements_for(&request).await;
    let invoice = invoice_of(&requirements);
    assert_eq!(
        bolt11_description(&invoice).as_deref(),
        Some("Batch AI inference request"),
        "d = description"
    );
    let decoded = decode(&invoice).expect("decodes");
    assert_eq!(decoded.amount_msat, Some(12_345));
    assert_eq!(decoded.expiry_secs, 120, "expiry = maxTimeoutSeconds");
    assert_eq!(decoded.payee.to_string(), node_id());
    assert_eq!(requirements["payTo"], node_id());
    assert!(invoice.starts_with("lnbcrt"), "{invoice}");

    // With descriptionHash: `h` only, no `d`.
    let (hashed, hash) = service
        .hashed_requirements(Network::Regtest, 1_000, 300)
        .await;
    let invoice = invoice_of(&hashed);
    assert_eq!(bolt11_description(&invoice), None, "no d");
    assert_eq!(
        decode(&invoice)
            .expect("decodes")
            .description_hash
            .map(|h| h.to_lower_hex_string()),
        Some(hash)
    );
}

#[tokio::test]
async fn a_deposit_invoice_is_not_payable_by_verify_or_settle() {
    let dir = tempdir();
    let (service, key, _, paid) = funded(dir.path(), 100_000, 10_000).await;
    let deposit = service.deposit(REGTEST, &key.account(), 10_000).await;
    let invoice = deposit["invoice"].as_str().expect("invoice");
    let body = paying(&paid, &key, invoice);
    let verdict = service.verify(&body).await;
    assert_invalid(
        &verdict,
        "invalid_exact_lightning_invoice_unknown",
        Some(&key.account()),
        "a deposit invoice at /verify",
    );
    let settled = service.settle(&body).await;
    assert_refused(
        &settled,
        "invalid_exact_lightning_invoice_unknown",
        REGTEST,
        Some(&key.account()),
        "a deposit invoice at /settle",
    );
    assert_eq!(service.balances(&key, REGTEST).await, (100_000, 0, 100_000));
}

#[tokio::test]
async fn an_invoice_never_recorded_is_unknown() {
    let dir = tempdir();
    let (service, key, _, paid) = funded(dir.path(), 100_000, 10_000).await;
    let now = unix_now();
    // Minted by another node.
    let (other, _) = mint_with(&MockNode::random(), Network::Regtest, 10_000, now, 600);
    // Minted with the node's own key, but never handed out by /requirements.
    let node = MockNode::from_secret_hex(NODE_KEY).expect("key");
    let (own, _) = mint_with(&node, Network::Regtest, 10_000, now, 600);
    for (case, invoice) in [("another node's", &other), ("the node's, unrecorded", &own)] {
        let body = paying(&paid, &key, invoice);
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_invoice_unknown",
            Some(&key.account()),
            case,
        );
        assert_refused(
            &service.settle(&body).await,
            "invalid_exact_lightning_invoice_unknown",
            REGTEST,
            Some(&key.account()),
            case,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// POST /verify: the order of the checks, the first failure wins.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verify_checks_the_x402_version_first() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let other = random_key();
    let (unknown, _) = mint_with(
        &MockNode::random(),
        Network::Regtest,
        10_000,
        unix_now(),
        600,
    );
    let cases = [
        ("request version 2", with(&good, "/x402Version", json!(2))),
        (
            "payment version 2",
            with(&good, "/paymentPayload/x402Version", json!(2)),
        ),
        ("request version missing", without(&good, "/x402Version")),
        (
            "payment version \"1\"",
            with(&good, "/paymentPayload/x402Version", json!("1")),
        ),
        (
            "bad version + bad signature",
            with(&signed_by(&good, &other), "/x402Version", json!(2)),
        ),
        (
            "bad version + bad scheme + unserved network",
            with(
                &with(
                    &with(&good, "/paymentPayload/x402Version", json!(0)),
                    "/paymentPayload/scheme",
                    json!("upto"),
                ),
                "/paymentRequirements/network",
                json!("lightning-signet"),
            ),
        ),
        (
            "bad version + unknown invoice",
            with(&paying(&good, &key, &unknown), "/x402Version", json!(2)),
        ),
    ];
    for (case, body) in cases {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_x402_version",
            None,
            case,
        );
    }
}

#[tokio::test]
async fn verify_checks_the_scheme_second() {
    let dir = tempdir();
    let (service, _, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let cases = [
        (
            "payment scheme upto",
            with(&good, "/paymentPayload/scheme", json!("upto")),
        ),
        (
            "requirements scheme upto",
            with(&good, "/paymentRequirements/scheme", json!("upto")),
        ),
        (
            "payment scheme missing",
            without(&good, "/paymentPayload/scheme"),
        ),
        (
            "bad scheme + unserved network",
            with(
                &with(&good, "/paymentPayload/scheme", json!("upto")),
                "/paymentRequirements/network",
                json!("lightning"),
            ),
        ),
        (
            "bad scheme + missing from",
            without(
                &with(&good, "/paymentRequirements/scheme", json!("EXACT")),
                "/paymentPayload/payload/from",
            ),
        ),
    ];
    for (case, body) in cases {
        assert_invalid(&service.verify(&body).await, "invalid_scheme", None, case);
    }
}

#[tokio::test]
async fn verify_checks_the_network_third() {
    let dir = tempdir();
    let (service, _, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let both = |network: &str| {
        with(
            &with(&good, "/paymentPayload/network", json!(network)),
            "/paymentRequirements/network",
            json!(network),
        )
    };
    let cases = [
        ("unserved signet", both("lightning-signet")),
        ("unserved mainnet", both("lightning")),
        (
            "unserved mainnet lnbtc id",
            both("lnbtc:000000000019d6689c085ae165831e93"),
        ),
        ("not a network", both("solana")),
        (
            "payload testnet, requirements regtest",
            with(&good, "/paymentPayload/network", json!(TESTNET)),
        ),
        (
            "payload regtest, requirements testnet",
            with(&good, "/paymentRequirements/network", json!(TESTNET)),
        ),
        (
            "payload network missing",
            without(&good, "/paymentPayload/network"),
        ),
        ("a regtest invoice on testnet", both(TESTNET)),
        (
            "bad network + missing invoice",
            without(&both("lightning-signet"), "/paymentPayload/payload/invoice"),
        ),
        (
            "bad network + bad signature",
            with(
                &both("lightning"),
                "/paymentPayload/payload/signature",
                json!("00".repeat(64)),
            ),
        ),
    ];
    for (case, body) in cases {
        assert_invalid(&service.verify(&body).await, "invalid_network", None, case);
    }
}

#[tokio::test]
async fn verify_checks_the_payload_fields_fourth() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let other = random_key();
    let another = service.requirements(Network::Regtest, 10_000).await;
    let cases = [
        (
            "no invoice",
            without(&good, "/paymentPayload/payload/invoice"),
        ),
        (
            "no signature",
            without(&good, "/paymentPayload/payload/signature"),
        ),
        ("no from", without(&good, "/paymentPayload/payload/from")),
        (
            "no maxAmountRequired",
            without(&good, "/paymentRequirements/maxAmountRequired"),
        ),
        ("no payTo", without(&good, "/paymentRequirements/payTo")),
        (
            "no extra.invoice",
            without(&good, "/paymentRequirements/extra/invoice"),
        ),
        ("no payload", without(&good, "/paymentPayload/payload")),
        (
            "asset ETH",
            with(&good, "/paymentRequirements/asset", json!("ETH")),
        ),
        (
            "payload.invoice != extra.invoice (both recorded, payload signed)",
            with(
                &good,
                "/paymentRequirements/extra/invoice",
                another["extra"]["invoice"].clone(),
            ),
        ),
        (
            "from is not a key",
            with(&good, "/paymentPayload/payload/from", json!("alice")),
        ),
        (
            "maxAmountRequired a number",
            with(
                &good,
                "/paymentRequirements/maxAmountRequired",
                json!(10_000),
            ),
        ),
        (
            "maxAmountRequired \"010000\"",
            with(
                &good,
                "/paymentRequirements/maxAmountRequired",
                json!("010000"),
            ),
        ),
        (
            "not an invoice",
            with(
                &with(
                    &good,
                    "/paymentPayload/payload/invoice",
                    json!("lnbcrt1garbage"),
                ),
                "/paymentRequirements/extra/invoice",
                json!("lnbcrt1garbage"),
            ),
        ),
        (
            "missing from + bad signature",
            without(&signed_by(&good, &other), "/paymentPayload/payload/from"),
        ),
        (
            "invoice mismatch + bad signature",
            with(
                &signed_by(&good, &other),
                "/paymentRequirements/extra/invoice",
                another["extra"]["invoice"].clone(),
            ),
        ),
    ];
    let _ = key;
    for (case, body) in cases {
        assert_invalid(&service.verify(&body).await, "invalid_payload", None, case);
    }
}

#[tokio::test]
async fn verify_checks_the_signature_fifth() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let other = random_key();
    let signature = good["paymentPayload"]["payload"]["signature"]
        .as_str()
        .expect("a signature")
        .to_owned();
    let invoice = good["paymentPayload"]["payload"]["invoice"]
        .as_str()
        .expect("an invoice")
        .to_owned();
    let (unknown, _) = mint_with(
        &MockNode::random(),
        Network::Regtest,
        10_000,
        unix_now(),
        600,
    );
    let cases = [
        (
            "tampered",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(tampered(&signature)),
            ),
        ),
        ("another key's", signed_by(&good, &other)),
        (
            "the high-S twin",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(high_s_twin(&signature)),
            ),
        ),
        (
            "a withdrawal signature of the invoice",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(key.sign_withdrawal(&invoice, 0)),
            ),
        ),
        (
            "not hex",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!("zz".repeat(64)),
            ),
        ),
        (
            "empty",
            with(&good, "/paymentPayload/payload/signature", json!("")),
        ),
        (
            "bad signature + unknown invoice",
            signed_by(&paying(&good, &key, &unknown), &other),
        ),
        (
            "bad signature + amount changed",
            with(
                &signed_by(&good, &other),
                "/paymentRequirements/maxAmountRequired",
                json!("1"),
            ),
        ),
        (
            "bad signature + unfunded account",
            with(
                &signed_by(&good, &key),
                "/paymentPayload/payload/from",
                json!(other.account()),
            ),
        ),
    ];
    for (case, body) in cases {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_payload_signature",
            None,
            case,
        );
    }
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (100_000, 0, 100_000),
        "nothing held"
    );
}

#[tokio::test]
async fn verify_checks_the_invoice_is_recorded_sixth() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let unfunded = random_key();
    let (unknown, _) = mint_with(
        &MockNode::random(),
        Network::Regtest,
        10_000,
        unix_now(),
        600,
    );
    let cases = [
        ("unknown", paying(&good, &key, &unknown), key.account()),
        (
            "unknown + amount differs",
            with(
                &paying(&good, &key, &unknown),
                "/paymentRequirements/maxAmountRequired",
                json!("20000"),
            ),
            key.account(),
        ),
        (
            "unknown + payee differs",
            with(
                &paying(&good, &key, &unknown),
                "/paymentRequirements/payTo",
                json!(other_node_id()),
            ),
            key.account(),
        ),
        (
            "unknown + unfunded account",
            paying(&good, &unfunded, &unknown),
            unfunded.account(),
        ),
    ];
    for (case, body, payer) in cases {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_invoice_unknown",
            Some(&payer),
            case,
        );
    }
}

#[tokio::test]
async fn verify_checks_the_amount_seventh() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let unfunded = random_key();
    let cases = [
        (
            "raised",
            with(
                &good,
                "/paymentRequirements/maxAmountRequired",
                json!("10001"),
            ),
            key.account(),
        ),
        (
            "lowered",
            with(
                &good,
                "/paymentRequirements/maxAmountRequired",
                json!("9999"),
            ),
            key.account(),
        ),
        (
            "amount + payee differ",
            with(
                &with(&good, "/paymentRequirements/maxAmountRequired", json!("1")),
                "/paymentRequirements/payTo",
                json!(other_node_id()),
            ),
            key.account(),
        ),
        (
            "amount differs + unfunded account",
            with(
                &paying(&good, &unfunded, &invoice_of(&good["paymentRequirements"])),
                "/paymentRequirements/maxAmountRequired",
                json!("5000"),
            ),
            unfunded.account(),
        ),
    ];
    for (case, body, payer) in cases {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_invoice_amount",
            Some(&payer),
            case,
        );
    }
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (100_000, 0, 100_000),
        "nothing held"
    );
}

#[tokio::test]
async fn verify_checks_the_payee_eighth() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let unfunded = random_key();
    let cases = [
        (
            "payTo another node",
            with(&good, "/paymentRequirements/payTo", json!(other_node_id())),
            key.account(),
        ),
        (
            "payTo not a key",
            with(&good, "/paymentRequirements/payTo", json!("the node")),
            key.account(),
        ),
        (
            "payTo the payer",
            with(&good, "/paymentRequirements/payTo", json!(key.account())),
            key.account(),
        ),
        (
            "payee differs + unfunded account",
            with(
                &paying(&good, &unfunded, &invoice_of(&good["paymentRequirements"])),
                "/paymentRequirements/payTo",
                json!(other_node_id()),
            ),
            unfunded.account(),
        ),
    ];
    for (case, body, payer) in cases {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_invoice_payee",
            Some(&payer),
            case,
        );
    }
}

#[tokio::test]
async fn verify_checks_the_expiry_ninth() {
    let dir = tempdir();
    let key = random_key();
    let unfunded = random_key();
    let (settled_body, open_body) = {
        let first = Svc::pinned(dir.path(), T, &[]);
        first.fund(&key, REGTEST, 100_000).await;
        // Both expire at T + 60; one is settled now.
        let settled = first
            .requirements_for(&text_request(Network::Regtest, 10_000, 60))
            .await;
        let open = first
            .requirements_for(&text_request(Network::Regtest, 10_000, 60))
            .await;
        let settled_body = body(&key, &settled);
        assert_eq!(first.settle(&settled_body).await["success"], true);
        (settled_body, body(&key, &open))
        // The first instance stops here.
    };

    // Within the skew (end + skew − 1): still valid.
    {
        let within = Svc::pinned(dir.path(), T + 60 + SKEW - 1, &[]);
        assert_eq!(
            within.verify(&open_body).await,
            json!({ "isValid": true, "payer": key.account() }),
            "within the skew"
        );
    }
    let late = Svc::pinned(dir.path(), T + 60 + SKEW, &[]);
    assert_invalid(
        &late.verify(&open_body).await,
        "payment_expired",
        Some(&key.account()),
        "at end + skew",
    );
    assert_invalid(
        &late.verify(&settled_body).await,
        "payment_expired",
        Some(&key.account()),
        "expired + already settled: expired first",
    );
    let unfunded_body = paying(
        &open_body,
        &unfunded,
        &invoice_of(&open_body["paymentRequirements"]),
    );
    assert_invalid(
        &late.verify(&unfunded_body).await,
        "payment_expired",
        Some(&unfunded.account()),
        "expired + unfunded: expired first",
    );
    assert_refused(
        &late.settle(&open_body).await,
        "payment_expired",
        REGTEST,
        Some(&key.account()),
        "an expired invoice is not settled",
    );
}

#[tokio::test]
async fn verify_checks_duplicate_settlement_tenth() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 100_000, 10_000).await;
    assert_eq!(service.settle(&good).await["success"], true);
    assert_invalid(
        &service.verify(&good).await,
        "duplicate_settlement",
        Some(&key.account()),
        "the payer again",
    );
    let unfunded = random_key();
    assert_invalid(
        &service.verify(&body(&unfunded, &requirements)).await,
        "duplicate_settlement",
        Some(&unfunded.account()),
        "already paid + an unfunded account: duplicate first",
    );
}

#[tokio::test]
async fn verify_checks_funds_last() {
    let dir = tempdir();
    let (service, _, requirements, _) = funded(dir.path(), 100_000, 10_000).await;
    let unknown = random_key();
    assert_invalid(
        &service.verify(&body(&unknown, &requirements)).await,
        "insufficient_funds",
        Some(&unknown.account()),
        "an account that does not exist has no funds",
    );
    let poor = random_key();
    service.fund(&poor, REGTEST, 9_999).await;
    assert_invalid(
        &service.verify(&body(&poor, &requirements)).await,
        "insufficient_funds",
        Some(&poor.account()),
        "funded with 1 msat too little",
    );
    assert_eq!(service.balances(&poor, REGTEST).await, (9_999, 0, 9_999));
    let exact = random_key();
    service.fund(&exact, REGTEST, 10_000).await;
    assert_eq!(
        service.verify(&body(&exact, &requirements)).await,
        json!({ "isValid": true, "payer": exact.account() }),
        "funded with exactly the amount"
    );
}

#[tokio::test]
async fn verify_names_the_payer_only_once_the_signature_checked() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 100_000, 10_000).await;
    let other = random_key();
    let before = [
        with(&good, "/paymentPayload/x402Version", json!(0)),
        with(&good, "/paymentPayload/scheme", json!("upto")),
        with(&good, "/paymentRequirements/network", json!("lightning")),
        without(&good, "/paymentRequirements/payTo"),
        signed_by(&good, &other),
    ];
    for body in &before {
        let verdict = service.verify(body).await;
        assert_eq!(verdict["isValid"], false, "{verdict}");
        assert!(
            verdict.get("payer").is_none(),
            "no payer before the signature: {verdict}"
        );
        let settled = service.settle(body).await;
        assert_eq!(settled["success"], false, "{settled}");
        assert!(
            settled.get("payer").is_none(),
            "no payer before the signature: {settled}"
        );
    }
    let after = with(&good, "/paymentRequirements/maxAmountRequired", json!("1"));
    assert_eq!(service.verify(&after).await["payer"], key.account());
    assert_eq!(service.settle(&after).await["payer"], key.account());
}

// ---------------------------------------------------------------------------------------------
// Valid verifies and holds.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_verify_answers_is_valid_with_the_payer_and_places_a_hold() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(
        service.verify(&good).await,
        json!({ "isValid": true, "payer": key.account() })
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 10_000, 40_000)
    );
    service.audit().await;
}

#[tokio::test]
async fn a_second_verify_of_the_same_invoice_keeps_one_hold() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 10_000, 10_000).await;
    for round in 0..3 {
        assert_eq!(
            service.verify(&good).await,
            json!({ "isValid": true, "payer": key.account() }),
            "verify {round}: the hold counts as available for its own payment hash"
        );
        assert_eq!(
            service.balances(&key, REGTEST).await,
            (10_000, 10_000, 0),
            "one hold"
        );
    }
    // The hold counts as available at /settle too.
    let settled = service.settle(&good).await;
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(service.balances(&key, REGTEST).await, (0, 0, 0));
    service.audit().await;
}

#[tokio::test]
async fn an_account_funded_for_one_request_cannot_hold_two_invoices_at_once() {
    let dir = tempdir();
    let (service, key, _, first) = funded(dir.path(), 15_000, 10_000).await;
    let second = body(&key, &service.requirements(Network::Regtest, 10_000).await);
    assert_eq!(service.verify(&first).await["isValid"], true);
    assert_invalid(
        &service.verify(&second).await,
        "insufficient_funds",
        Some(&key.account()),
        "the second invoice while the first is held",
    );
    assert_refused(
        &service.settle(&second).await,
        "insufficient_funds",
        REGTEST,
        Some(&key.account()),
        "settling the second invoice while the first is held",
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (15_000, 10_000, 5_000),
        "the first hold stays"
    );
    // Once the first is settled, the second is still too much for what is left.
    assert_eq!(service.settle(&first).await["success"], true);
    assert_invalid(
        &service.verify(&second).await,
        "insufficient_funds",
        Some(&key.account()),
        "5,000 left",
    );
    service.audit().await;
}

#[tokio::test]
async fn concurrent_verifies_of_different_invoices_hold_one() {
    let dir = tempdir();
    let (service, key, _, _) = funded(dir.path(), 10_000, 10_000).await;
    let mut bodies = Vec::new();
    for _ in 0..8 {
        bodies.push(body(
            &key,
            &service.requirements(Network::Regtest, 10_000).await,
        ));
    }
    let mut tasks = Vec::new();
    for body in bodies {
        let client = service.client.clone();
        let url = service.url("/verify");
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut valid = 0;
    for task in tasks {
        let (status, verdict) = task.await.expect("joined");
        assert_eq!(status, 200, "a verdict, not an error: {verdict}");
        if verdict["isValid"] == true {
            valid += 1;
        } else {
            assert_eq!(verdict["invalidReason"], "insufficient_funds", "{verdict}");
        }
    }
    assert_eq!(
        valid, 1,
        "one handler may run on an account funded for one request"
    );
    assert_eq!(service.balances(&key, REGTEST).await, (10_000, 10_000, 0));
    service.audit().await;
}

#[tokio::test]
async fn a_hold_ends_when_its_invoice_is_settled_by_another_account() {
    let dir = tempdir();
    let (service, first, requirements, first_body) = funded(dir.path(), 10_000, 10_000).await;
    let second = random_key();
    service.fund(&second, REGTEST, 10_000).await;
    assert_eq!(service.verify(&first_body).await["isValid"], true);
    assert_eq!(
        service.settle(&body(&second, &requirements)).await["success"],
        true
    );
    // The invoice is paid: no settle of it can consume the first account's hold any more.
    assert_eq!(
        service.balances(&first, REGTEST).await,
        (10_000, 0, 10_000),
        "a hold lasts until the settle of its payment hash (Part 3, Model: holds)"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /settle.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn settle_answers_success_with_the_payment_hash_network_and_payer() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(service.verify(&good).await["isValid"], true);
    let settled = service.settle(&good).await;
    assert_eq!(
        settled,
        json!({
            "success": true,
            "transaction": hash_of(&invoice_of(&requirements)),
            "network": REGTEST,
            "payer": key.account(),
        })
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (40_000, 0, 40_000),
        "debited once"
    );
    assert_refused(
        &service.settle(&good).await,
        "duplicate_settlement",
        REGTEST,
        Some(&key.account()),
        "a second settle",
    );
    assert_eq!(service.balances(&key, REGTEST).await, (40_000, 0, 40_000));
    service.audit().await;
}

#[tokio::test]
async fn settle_without_a_verify_takes_the_amount() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(service.settle(&good).await["success"], true);
    assert_eq!(service.balances(&key, REGTEST).await, (40_000, 0, 40_000));
    service.audit().await;
}

#[tokio::test]
async fn settle_echoes_the_network_form_the_request_used() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST_ID, 100_000).await;
    for (case, requirements_network, payload_network) in [
        ("lnbtc ids", REGTEST_ID, REGTEST_ID),
        ("v1 names", REGTEST, REGTEST),
        (
            "requirements lnbtc id, payload v1 name",
            REGTEST_ID,
            REGTEST,
        ),
        (
            "requirements v1 name, payload lnbtc id",
            REGTEST,
            REGTEST_ID,
        ),
    ] {
        let requirements = service.requirements(Network::Regtest, 10_000).await;
        let good = body(&key, &requirements);
        let good = with(
            &good,
            "/paymentRequirements/network",
            json!(requirements_network),
        );
        let good = with(&good, "/paymentPayload/network", json!(payload_network));
        assert_eq!(
            service.verify(&good).await,
            json!({ "isValid": true, "payer": key.account() }),
            "{case}"
        );
        assert_eq!(
            service.settle(&good).await,
            json!({
                "success": true,
                "transaction": hash_of(&invoice_of(&requirements)),
                "network": requirements_network,
                "payer": key.account(),
            }),
            "{case}"
        );
        assert_refused(
            &service.settle(&good).await,
            "duplicate_settlement",
            requirements_network,
            Some(&key.account()),
            case,
        );
    }
    assert_eq!(
        service.balances(&key, REGTEST_ID).await,
        (60_000, 0, 60_000)
    );
}

#[tokio::test]
async fn after_a_settle_the_nodes_invoice_is_cancelled() {
    let dir = tempdir();
    let (service, _, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(service.settle(&good).await["success"], true);
    let (status, refused) = service.pay(&invoice_of(&requirements)).await;
    assert_eq!(
        status, 409,
        "a settled invoice can no longer be paid over Lightning: {refused}"
    );
}

#[tokio::test]
async fn a_refused_settle_releases_its_hold() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(service.verify(&good).await["isValid"], true);
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 10_000, 40_000)
    );
    // Refused after the signature checked (the amount changed): the hold goes.
    assert_refused(
        &service
            .settle(&with(
                &good,
                "/paymentRequirements/maxAmountRequired",
                json!("1"),
            ))
            .await,
        "invalid_exact_lightning_invoice_amount",
        REGTEST,
        Some(&key.account()),
        "the amount changed",
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 0, 50_000),
        "released"
    );

    // Held again, then the invoice is paid over Lightning: the settle is refused, the hold goes.
    assert_eq!(service.verify(&good).await["isValid"], true);
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 10_000, 40_000)
    );
    assert_eq!(service.pay(&invoice_of(&requirements)).await.0, 200);
    assert_refused(
        &service.settle(&good).await,
        "duplicate_settlement",
        REGTEST,
        Some(&key.account()),
        "paid over Lightning after the verify",
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 0, 50_000),
        "released"
    );
    service.audit().await;
}

#[tokio::test]
async fn a_settle_refused_before_its_signature_checked_keeps_the_hold() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(service.verify(&good).await["isValid"], true);
    // Someone else sends the account's payment with their own signature.
    let forged = signed_by(&good, &random_key());
    assert_refused(
        &service.settle(&forged).await,
        "invalid_exact_lightning_payload_signature",
        REGTEST,
        None,
        "a forged settle",
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 10_000, 40_000),
        "only the account's own signature releases its hold"
    );
    assert_eq!(service.settle(&good).await["success"], true);
}

#[tokio::test]
async fn settle_of_an_invoice_already_paid_over_lightning_is_duplicate_settlement() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    let (status, paid) = service.pay(&invoice_of(&requirements)).await;
    assert_eq!(status, 200, "{paid}");
    assert_refused(
        &service.settle(&good).await,
        "duplicate_settlement",
        REGTEST,
        Some(&key.account()),
        "the node reports it paid",
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 0, 50_000),
        "nothing debited"
    );
}

#[tokio::test]
async fn settle_runs_the_verify_checks() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 5_000, 10_000).await;
    let other = random_key();
    let cases = [
        (
            "version",
            with(&good, "/x402Version", json!(3)),
            "invalid_x402_version",
            REGTEST,
            None,
        ),
        (
            "scheme",
            with(&good, "/paymentPayload/scheme", json!("upto")),
            "invalid_scheme",
            REGTEST,
            None,
        ),
        (
            "network",
            with(&good, "/paymentPayload/network", json!(TESTNET)),
            "invalid_network",
            REGTEST,
            None,
        ),
        (
            "payload",
            without(&good, "/paymentPayload/payload/from"),
            "invalid_payload",
            REGTEST,
            None,
        ),
        (
            "signature",
            signed_by(&good, &other),
            "invalid_exact_lightning_payload_signature",
            REGTEST,
            None,
        ),
        (
            "payee",
            with(&good, "/paymentRequirements/payTo", json!(other_node_id())),
            "invalid_exact_lightning_invoice_payee",
            REGTEST,
            Some(key.account()),
        ),
        (
            "funds",
            good.clone(),
            "insufficient_funds",
            REGTEST,
            Some(key.account()),
        ),
    ];
    for (case, body, reason, network, payer) in cases {
        assert_refused(
            &service.settle(&body).await,
            reason,
            network,
            payer.as_deref(),
            case,
        );
    }
    assert_eq!(service.balances(&key, REGTEST).await, (5_000, 0, 5_000));
}

#[tokio::test]
async fn a_settle_refused_for_insufficient_funds_leaves_the_invoice_payable() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 5_000).await;
    // Offered in both flows (descriptionHash): refused by the seed flow for want of funds, it
    // must stay payable over Lightning. The settle runs "the same checks" (funds included)
    // before it cancels the node's invoice.
    let (requirements, _) = service
        .hashed_requirements(Network::Regtest, 10_000, 300)
        .await;
    assert_refused(
        &service.settle(&body(&key, &requirements)).await,
        "insufficient_funds",
        REGTEST,
        Some(&key.account()),
        "funded too little",
    );
    let (status, paid) = service.pay(&invoice_of(&requirements)).await;
    assert_eq!(
        status, 200,
        "a settle refused by its checks leaves the node's invoice alone: {paid}"
    );
}

#[tokio::test]
async fn a_settle_refused_for_insufficient_funds_may_be_retried_once_funded() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 5_000).await;
    let requirements = service.requirements(Network::Regtest, 10_000).await;
    let good = body(&key, &requirements);
    assert_eq!(
        service.settle(&good).await["errorReason"],
        "insufficient_funds"
    );
    service.fund(&key, REGTEST, 5_000).await;
    assert_eq!(service.settle(&good).await["success"], true);
    assert_eq!(service.balances(&key, REGTEST).await, (0, 0, 0));
    service.audit().await;
}

#[tokio::test]
async fn settle_checks_the_x402_version_first_as_verify_does() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    // A seed-flow payment (payload version 1) in a request of another version: with the seed
    // flow served, the first check fails (versions 1), a verdict as at /verify.
    for (case, body) in [
        (
            "request version 0, payload version 1",
            with(&good, "/x402Version", json!(0)),
        ),
        (
            "request version 1, payload version 2",
            with(&good, "/paymentPayload/x402Version", json!(2)),
        ),
        (
            "request version 2, payload version 1",
            with(&good, "/x402Version", json!(2)),
        ),
    ] {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_x402_version",
            None,
            case,
        );
        let (status, settled) = service.post("/settle", &body).await;
        assert_eq!(
            status, 200,
            "{case}: a verdict, as /verify gives: {settled}"
        );
        assert_refused(&settled, "invalid_x402_version", REGTEST, None, case);
    }
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn concurrent_settles_of_one_invoice_have_one_success_and_no_error() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let client = service.client.clone();
        let url = service.url("/settle");
        let body = good.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut successes = 0;
    for task in tasks {
        let (status, verdict) = task.await.expect("joined");
        assert_eq!(status, 200, "a verdict, never 503: {verdict}");
        if verdict["success"] == true {
            successes += 1;
        } else {
            assert_eq!(verdict["errorReason"], "duplicate_settlement", "{verdict}");
        }
    }
    assert_eq!(successes, 1);
    assert_eq!(service.balances(&key, REGTEST).await, (40_000, 0, 40_000));
    service.audit().await;
}

// ---------------------------------------------------------------------------------------------
// An invoice is paid once, whichever flow.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_v1_settled_invoice_is_a_duplicate_for_an_lnbtc_settle() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (requirements, request_hash) = service
        .hashed_requirements(Network::Regtest, 10_000, 300)
        .await;
    assert_eq!(
        service.settle(&body(&key, &requirements)).await["success"],
        true
    );
    // Whoever learns the preimage (here: from the books) cannot settle it again over lnbtc.
    let payment_hash = hash_of(&invoice_of(&requirements));
    let preimage = service.recorded_preimage(&payment_hash).await;
    let settled = service
        .settle(&lnbtc_body(&requirements, &request_hash, &preimage))
        .await;
    assert_eq!(settled["success"], false, "{settled}");
    assert_eq!(settled["errorReason"], "duplicate_settlement", "{settled}");
    assert_eq!(settled["network"], REGTEST_ID, "{settled}");
}

#[tokio::test]
async fn an_lnbtc_settled_invoice_is_a_duplicate_for_a_v1_verify_and_settle() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (requirements, request_hash) = service
        .hashed_requirements(Network::Regtest, 10_000, 300)
        .await;
    let good = body(&key, &requirements);
    assert_eq!(service.verify(&good).await["isValid"], true);
    let (status, paid) = service.pay(&invoice_of(&requirements)).await;
    assert_eq!(status, 200, "{paid}");
    let preimage = paid["preimage"].as_str().expect("a preimage");
    let settled = service
        .settle(&lnbtc_body(&requirements, &request_hash, preimage))
        .await;
    assert_eq!(settled["success"], true, "the lnbtc settle: {settled}");
    assert_invalid(
        &service.verify(&good).await,
        "duplicate_settlement",
        Some(&key.account()),
        "v1 verify after the lnbtc settle",
    );
    assert_refused(
        &service.settle(&good).await,
        "duplicate_settlement",
        REGTEST,
        Some(&key.account()),
        "v1 settle after the lnbtc settle",
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 0, 50_000),
        "nothing debited, the refused settle released the hold"
    );
}

// ---------------------------------------------------------------------------------------------
// GET /supported and X402_FACILITATOR_FLOWS.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn supported_lists_a_v1_kind_per_served_network() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let kinds = service.supported().await["kinds"].clone();
    let kinds = kinds.as_array().expect("kinds");
    for network in [TESTNET, REGTEST] {
        assert!(
            kinds.contains(&json!({
                "x402Version": 1,
                "scheme": "exact",
                "network": network,
                "extra": { "payTo": node_id() },
            })),
            "a v1 kind for {network}: {kinds:?}"
        );
    }
    assert!(
        kinds.iter().all(|kind| kind["x402Version"] != 1
            || [TESTNET, REGTEST].contains(&kind["network"].as_str().unwrap_or_default())),
        "v1 kinds of served networks only: {kinds:?}"
    );
    let payee = service.requirements(Network::Regtest, 1_000).await["payTo"].clone();
    assert_eq!(
        payee,
        node_id(),
        "the payTo of /supported is the payee of /requirements"
    );

    // The networks in either id form; only those.
    let other_dir = tempdir();
    let regtest_only = Svc::start(
        other_dir.path(),
        &[("X402_FACILITATOR_NETWORKS", REGTEST_ID)],
    );
    let kinds = regtest_only.supported().await["kinds"].clone();
    let v1: Vec<_> = kinds
        .as_array()
        .expect("kinds")
        .iter()
        .filter(|kind| kind["x402Version"] == 1)
        .cloned()
        .collect();
    assert_eq!(
        v1,
        vec![
            json!({ "x402Version": 1, "scheme": "exact", "network": REGTEST, "extra": { "payTo": node_id() } })
        ]
    );
}

#[tokio::test]
async fn flows_lnbtc_alone_serves_no_seed_flow() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[("X402_FACILITATOR_FLOWS", "lnbtc")]);
    let kinds = service.supported().await["kinds"].clone();
    let kinds = kinds.as_array().expect("kinds");
    assert!(!kinds.is_empty());
    assert!(
        kinds.iter().all(|kind| kind["x402Version"] == 2),
        "no v1 kind: {kinds:?}"
    );

    // A seed-flow body of invoices minted elsewhere: refused as a request, not judged.
    let key = random_key();
    let (invoice, _) = mint_with(
        &MockNode::random(),
        Network::Regtest,
        10_000,
        unix_now(),
        600,
    );
    let requirements = json!({
        "scheme": "exact", "network": REGTEST, "maxAmountRequired": "10000", "asset": "BTC",
        "payTo": node_id(), "resource": "http://127.0.0.1/paid", "description": "",
        "mimeType": "", "maxTimeoutSeconds": 600, "extra": { "invoice": invoice },
    });
    let seed = body(&key, &requirements);
    let (status, answer) = service.post("/verify", &seed).await;
    assert_eq!(status, 400, "/verify: {answer}");
    assert!(answer["error"].is_string(), "{answer}");
    let (status, answer) = service.post("/settle", &seed).await;
    assert_eq!(status, 400, "v1 /settle: {answer}");
    assert!(answer["error"].is_string(), "{answer}");

    let account = key.account();
    let signature = key.account_read_signature(REGTEST, unix_now());
    let hash = "ab".repeat(32);
    let (status, _) = service
        .post(
            "/accounts/deposits",
            &json!({ "network": REGTEST, "account": account, "amount": "1000" }),
        )
        .await;
    assert_eq!(status, 404, "POST /accounts/deposits");
    assert_eq!(
        service.get(&format!("/accounts/deposits/{hash}")).await.0,
        404
    );
    assert_eq!(
        service
            .get_signed(&format!("/accounts/{REGTEST}/{account}"), &[&signature])
            .await
            .0,
        404
    );
    let (external, _) = service.external(1_000, REGTEST, "succeed").await;
    assert_eq!(service.withdraw(&key, REGTEST, &external, 10).await.0, 404);
    assert_eq!(
        service
            .get_signed(
                &format!("/accounts/{REGTEST}/{account}/withdrawals/{hash}"),
                &[&signature]
            )
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn flows_v1_alone_serves_no_lnbtc() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[("X402_FACILITATOR_FLOWS", "v1")]);
    let kinds = service.supported().await["kinds"].clone();
    let kinds = kinds.as_array().expect("kinds");
    assert!(!kinds.is_empty());
    assert!(
        kinds.iter().all(|kind| kind["x402Version"] == 1),
        "no lnbtc kind: {kinds:?}"
    );
    let (requirements, request_hash) = service
        .hashed_requirements(Network::Regtest, 10_000, 300)
        .await;
    let (status, paid) = service.pay(&invoice_of(&requirements)).await;
    assert_eq!(status, 200, "{paid}");
    let proof = lnbtc_body(
        &requirements,
        &request_hash,
        paid["preimage"].as_str().expect("preimage"),
    );
    let (status, answer) = service.post("/settle", &proof).await;
    assert_eq!(status, 400, "an lnbtc settle: {answer}");
    assert!(answer["error"].is_string(), "{answer}");
    // The seed flow itself is served.
    let key = random_key();
    service.fund(&key, REGTEST, 10_000).await;
    let requirements = service.requirements(Network::Regtest, 10_000).await;
    assert_eq!(
        service.settle(&body(&key, &requirements)).await["success"],
        true
    );
}

// ---------------------------------------------------------------------------------------------
// Deposits.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_deposit_answers_201_with_an_invoice_of_the_node() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    for (network_id, network) in [
        (REGTEST, Network::Regtest),
        (REGTEST_ID, Network::Regtest),
        (TESTNET, Network::Testnet),
        (TESTNET_ID, Network::Testnet),
    ] {
        let before = unix_now();
        let deposit = service.deposit(network_id, &key.account(), 25_000).await;
        let object = deposit.as_object().expect("an object");
        let mut names: Vec<_> = object.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "account",
                "amount",
                "expiresAt",
                "invoice",
                "network",
                "paymentHash"
            ],
            "{deposit}"
        );
        assert_eq!(deposit["network"], network_id, "echoed as written");
        assert_eq!(deposit["account"], key.account());
        assert_eq!(deposit["amount"], "25000");
        let invoice = deposit["invoice"].as_str().expect("an invoice");
        let decoded = decode(invoice).expect("decodes");
        assert_eq!(deposit["paymentHash"], decoded.payment_hash_hex());
        assert_eq!(decoded.currency, network.currency());
        assert_eq!(decoded.amount_msat, Some(25_000));
        assert_eq!(decoded.payee.to_string(), node_id());
        assert_eq!(
            bolt11_description(invoice),
            Some(format!("deposit to {}", key.account())),
            "d = deposit to <account>"
        );
        let expires_at = deposit["expiresAt"]
            .as_u64()
            .expect("expiresAt is an integer");
        assert_eq!(
            expires_at,
            decoded.end(),
            "expiresAt is the invoice's expiry"
        );
        assert_eq!(decoded.expiry_secs, 3600, "the default deposit expiry");
        assert!((before + 3600..=unix_now() + 3600).contains(&expires_at));
    }
}

#[tokio::test]
async fn a_deposit_is_pending_until_paid_then_credited() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let deposit = service.deposit(REGTEST_ID, &key.account(), 30_000).await;
    let hash = deposit["paymentHash"].as_str().expect("hash");
    let path = format!("/accounts/deposits/{hash}");
    let (status, state) = service.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        state,
        json!({
            "network": REGTEST_ID,
            "account": key.account(),
            "amount": "30000",
            "paymentHash": hash,
            "state": "pending",
        })
    );
    assert_eq!(
        service.account(&key, REGTEST).await.0,
        404,
        "no account before a credit"
    );
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        200
    );
    let (status, state) = service.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        state["state"], "credited",
        "a read right after the payment: {state}"
    );
    assert_eq!(service.balances(&key, REGTEST).await, (30_000, 0, 30_000));
}

#[tokio::test]
async fn a_paid_deposit_is_credited_at_the_account_read_too() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 1_000).await;
    let deposit = service.deposit(REGTEST, &key.account(), 30_000).await;
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        200
    );
    // No read of the deposit: the account read checks it.
    assert_eq!(service.balances(&key, REGTEST).await, (31_000, 0, 31_000));
}

#[tokio::test]
async fn a_deposit_is_credited_exactly_once_however_often_read() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let deposit = service.deposit(REGTEST, &key.account(), 30_000).await;
    let hash = deposit["paymentHash"].as_str().expect("hash").to_owned();
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        200
    );
    // Concurrent reads of the deposit and the account right after the payment.
    let mut tasks = Vec::new();
    for round in 0..16 {
        let client = service.client.clone();
        let url = if round % 2 == 0 {
            service.url(&format!("/accounts/deposits/{hash}"))
        } else {
            service.url(&format!("/accounts/{REGTEST}/{}", key.account()))
        };
        let signature = key.account_read_signature(REGTEST, unix_now());
        tasks.push(tokio::spawn(async move {
            client
                .get(url)
                .header("X402-Account-Signature", signature)
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("joined"), 200);
    }
    for _ in 0..5 {
        let (_, state) = service.get(&format!("/accounts/deposits/{hash}")).await;
        assert_eq!(state["state"], "credited");
        assert_eq!(
            service.balances(&key, REGTEST).await,
            (30_000, 0, 30_000),
            "credited once"
        );
    }
    // Paying it again is refused by the node: still once.
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        409
    );
    assert_eq!(service.balances(&key, REGTEST).await, (30_000, 0, 30_000));
    service.audit().await;
}

#[tokio::test]
async fn a_deposit_expires_after_the_configured_expiry() {
    let dir = tempdir();
    let key = random_key();
    let expiry = [("X402_FACILITATOR_DEPOSIT_EXPIRY_SECONDS", "60")];
    let hash = {
        let first = Svc::pinned(dir.path(), T, &expiry);
        let deposit = first.deposit(REGTEST, &key.account(), 5_000).await;
        assert_eq!(deposit["expiresAt"], T + 60, "{deposit}");
        let invoice = deposit["invoice"].as_str().expect("invoice");
        assert_eq!(decode(invoice).expect("decodes").expiry_secs, 60);
        deposit["paymentHash"].as_str().expect("hash").to_owned()
    };
    let path = format!("/accounts/deposits/{hash}");
    {
        let before = Svc::pinned(dir.path(), T + 59, &expiry);
        assert_eq!(before.get(&path).await.1["state"], "pending", "at T + 59");
    }
    let after = Svc::pinned(dir.path(), T + 60, &expiry);
    let (status, state) = after.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(state["state"], "expired", "at its expiry: {state}");
    assert_eq!(
        after.account_at(&key, REGTEST, T + 60).await.0,
        404,
        "nothing credited"
    );
}

#[tokio::test]
async fn an_unknown_deposit_is_404() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    for hash in [
        "ab".repeat(32),
        "AB".repeat(32),
        "xyz".into(),
        "ab".repeat(31),
    ] {
        let (status, answer) = service.get(&format!("/accounts/deposits/{hash}")).await;
        assert_eq!(status, 404, "{hash}");
        assert!(answer["error"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn bad_deposit_requests_are_400() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let account = random_key().account();
    let valid = json!({ "network": REGTEST, "account": account, "amount": "1000" });
    let cases = [
        (
            "unknown network",
            with(&valid, "/network", json!("lightning-foo")),
        ),
        (
            "unserved network",
            with(&valid, "/network", json!("lightning")),
        ),
        (
            "unserved signet lnbtc id",
            with(
                &valid,
                "/network",
                json!("lnbtc:00000008819873e925422c1ff0f99f7c"),
            ),
        ),
        (
            "account too short",
            with(&valid, "/account", json!(&account[..64])),
        ),
        (
            "account uppercase",
            with(&valid, "/account", json!(account.to_uppercase())),
        ),
        (
            "account not hex",
            with(&valid, "/account", json!("zz".repeat(33))),
        ),
        (
            "account uncompressed prefix",
            with(&valid, "/account", json!(format!("04{}", &account[2..]))),
        ),
        ("amount 0", with(&valid, "/amount", json!("0"))),
        ("amount 010", with(&valid, "/amount", json!("010"))),
        ("amount a number", with(&valid, "/amount", json!(1000))),
        ("amount negative", with(&valid, "/amount", json!("-5"))),
        ("amount missing", without(&valid, "/amount")),
        ("account missing", without(&valid, "/account")),
        ("network missing", without(&valid, "/network")),
    ];
    for (case, body) in cases {
        let (status, answer) = service.post("/accounts/deposits", &body).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert!(answer["error"].is_string(), "{case}: {answer}");
    }
    let (status, _) = service.post_raw("/accounts/deposits", "not json").await;
    assert_eq!(status, 400, "not JSON");
}

#[tokio::test]
async fn the_background_check_credits_a_paid_deposit_without_a_read() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let deposit = service.deposit(REGTEST, &key.account(), 7_000).await;
    let hash = deposit["paymentHash"].as_str().expect("hash").to_owned();
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        200
    );
    // Watch the books, not the service: any read of it would credit the deposit itself.
    let pool = service.books().await;
    let credited = eventually!({
        let state: Option<String> =
            sqlx::query("SELECT state FROM deposits WHERE payment_hash = $1")
                .bind(&hash)
                .fetch_optional(&pool)
                .await
                .expect("reads")
                .map(|row| row.get(0));
        state.as_deref() == Some("credited")
    });
    pool.close().await;
    assert!(
        credited,
        "the bookkeeper credits a paid deposit within {BACKGROUND_LIMIT:?}"
    );
    assert_eq!(service.balances(&key, REGTEST).await, (7_000, 0, 7_000));
}

/// Asks for `count` deposit invoices to `account`, never paid.
async fn unpaid_deposits(service: &Svc, account: &str, count: usize) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (client, url) = (service.client.clone(), service.url("/accounts/deposits"));
        let body = json!({ "network": REGTEST, "account": account, "amount": "1000" });
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("joined"), 201);
    }
}

#[tokio::test]
async fn an_account_read_credits_a_paid_deposit_however_many_are_pending() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    // Anyone may deposit to an account: 16 invoices asked for it and never paid (the most an
    // account may have), and the 17th refused.
    unpaid_deposits(&service, &key.account(), 15).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let deposit = service.deposit(REGTEST, &key.account(), 9_000).await;
    let (status, refused) = service
        .post(
            "/accounts/deposits",
            &json!({ "network": REGTEST, "account": key.account(), "amount": "1000" }),
        )
        .await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        200
    );
    // A read right after the payment already sees it credited.
    let (status, account) = service.account(&key, REGTEST).await;
    assert_eq!(
        status, 200,
        "the account read credits the paid deposit: {account}"
    );
    assert_eq!(account["balance"], "9000", "{account}");
}

#[tokio::test]
async fn the_background_check_reaches_every_pending_deposit() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    // 110 deposit invoices asked for (by anyone, to anyone) and never paid.
    for _ in 0..11 {
        unpaid_deposits(&service, &random_key().account(), 10).await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let key = random_key();
    let deposit = service.deposit(REGTEST, &key.account(), 7_000).await;
    let hash = deposit["paymentHash"].as_str().expect("hash").to_owned();
    assert_eq!(
        service
            .pay(deposit["invoice"].as_str().expect("invoice"))
            .await
            .0,
        200
    );
    let pool = service.books().await;
    let credited = eventually!({
        let state: Option<String> =
            sqlx::query("SELECT state FROM deposits WHERE payment_hash = $1")
                .bind(&hash)
                .fetch_optional(&pool)
                .await
                .expect("reads")
                .map(|row| row.get(0));
        state.as_deref() == Some("credited")
    });
    pool.close().await;
    assert!(
        credited,
        "the bookkeeper credits a paid deposit within {BACKGROUND_LIMIT:?}, however many others are pending"
    );
}

// ---------------------------------------------------------------------------------------------
// GET /accounts/{network}/{account}.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_account_read_without_a_valid_signature_is_401() {
    let dir = tempdir();
    let service = Svc::pinned(dir.path(), T, &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 10_000).await;
    let other = random_key();
    let unknown = random_key();
    let path = format!("/accounts/{REGTEST}/{}", key.account());
    let good = key.account_read_signature(REGTEST, T);
    assert_eq!(
        service.get_signed(&path, &[&good]).await.0,
        200,
        "the good one"
    );
    let signed_at = |unix: u64| key.account_read_signature(REGTEST, unix);
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no header", vec![]),
        ("garbage", vec!["garbage".into()]),
        (
            "no time",
            vec![good.split_once('.').expect("dot").1.to_owned()],
        ),
        ("time not canonical", vec![format!("0{good}")]),
        (
            "another key's",
            vec![other.account_read_signature(REGTEST, T)],
        ),
        (
            "over the other id form",
            vec![key.account_read_signature(REGTEST_ID, T)],
        ),
        (
            "over another network",
            vec![key.account_read_signature(TESTNET, T)],
        ),
        (
            "a withdrawal signature",
            vec![format!("{T}.{}", key.sign_withdrawal("lnbcrt1x", T))],
        ),
        ("tampered", vec![tampered(&good)]),
        ("stale past the skew", vec![signed_at(T - SKEW - 1)]),
        ("future past the skew", vec![signed_at(T + SKEW + 1)]),
        ("two signatures", vec![good.clone(), good.clone()]),
    ];
    for (case, values) in &cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let (status, answer) = service.get_signed(&path, &values).await;
        assert_eq!(status, 401, "{case}: {answer}");
        assert!(answer["error"].is_string(), "{case}: {answer}");
    }
    assert_eq!(
        service.get_signed(&path, &[&signed_at(T - SKEW)]).await.0,
        200,
        "at the skew's edge"
    );
    assert_eq!(
        service.get_signed(&path, &[&signed_at(T + SKEW)]).await.0,
        200,
        "at the skew's edge"
    );
    // An unknown account: 401 too without a valid signature (checked first).
    let unknown_path = format!("/accounts/{REGTEST}/{}", unknown.account());
    assert_eq!(service.get_signed(&unknown_path, &[]).await.0, 401);
    assert_eq!(service.get_signed(&unknown_path, &[&good]).await.0, 401);

    // The skew is X402_FACILITATOR_SKEW_SECONDS.
    let narrow_dir = tempdir();
    let narrow = Svc::pinned(
        narrow_dir.path(),
        T,
        &[("X402_FACILITATOR_SKEW_SECONDS", "10")],
    );
    narrow.fund(&key, REGTEST, 10_000).await;
    assert_eq!(narrow.account_at(&key, REGTEST, T - 10).await.0, 200);
    assert_eq!(narrow.account_at(&key, REGTEST, T - 11).await.0, 401);
}

#[tokio::test]
async fn a_well_signed_read_of_a_missing_account_is_404() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let (status, answer) = service.account(&key, REGTEST).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].is_string());
    // A deposit asked for but not paid does not make an account.
    service.deposit(REGTEST, &key.account(), 1_000).await;
    assert_eq!(service.account(&key, REGTEST).await.0, 404);
    // A well-signed read on a network not served.
    assert_eq!(service.account(&key, "lightning-signet").await.0, 404);
}

#[tokio::test]
async fn an_account_reads_in_either_network_form_signed_over_the_form_used() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 12_000).await;
    for network_id in [REGTEST, REGTEST_ID] {
        let (status, account) = service.account(&key, network_id).await;
        assert_eq!(status, 200, "{account}");
        assert_eq!(
            account,
            json!({
                "network": network_id,
                "account": key.account(),
                "balance": "12000",
                "held": "0",
                "available": "12000",
            })
        );
    }
    // Signed over the other form than the path's.
    let path = format!("/accounts/{REGTEST_ID}/{}", key.account());
    let signature = key.account_read_signature(REGTEST, unix_now());
    assert_eq!(service.get_signed(&path, &[&signature]).await.0, 401);
}

#[tokio::test]
async fn balances_of_different_networks_never_mix() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    assert_eq!(
        service.account(&key, TESTNET).await.0,
        404,
        "no testnet account"
    );
    assert_eq!(
        service.account(&key, TESTNET_ID).await.0,
        404,
        "no testnet account"
    );
    // A testnet invoice is not paid from regtest money.
    let testnet = service.requirements(Network::Testnet, 10_000).await;
    assert_invalid(
        &service.verify(&body(&key, &testnet)).await,
        "insufficient_funds",
        Some(&key.account()),
        "a testnet payment from a regtest balance",
    );
    service.fund(&key, TESTNET_ID, 20_000).await;
    assert_eq!(service.balances(&key, TESTNET).await, (20_000, 0, 20_000));
    assert_eq!(service.settle(&body(&key, &testnet)).await["success"], true);
    assert_eq!(service.balances(&key, TESTNET).await, (10_000, 0, 10_000));
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    // Nor is a withdrawal on testnet paid from regtest money.
    let (invoice, _) = service.external(15_000, TESTNET, "succeed").await;
    let (status, refused) = service.withdraw(&key, TESTNET, &invoice, 100).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["reason"], "insufficient_funds");
    service.audit().await;
}

// ---------------------------------------------------------------------------------------------
// Withdrawals.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_withdrawal_succeeds_and_debits_the_amount_and_the_fee() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (invoice, hash) = service.external(20_001, REGTEST, "succeed").await;
    let (status, paid) = service.withdraw(&key, REGTEST, &invoice, 100).await;
    assert_eq!(status, 200, "{paid}");
    let preimage = paid["preimage"].as_str().expect("a preimage").to_owned();
    assert_eq!(
        paid,
        json!({
            "paymentHash": hash,
            "state": "succeeded",
            "amount": "20001",
            "feeMsat": "21",
            "preimage": preimage,
        }),
        "the simulated fee is 0.1 %, rounded up"
    );
    let digest = sha256::Hash::hash(&<[u8; 32]>::from_hex(&preimage).expect("32 bytes hex"));
    assert_eq!(
        digest.to_byte_array().to_lower_hex_string(),
        hash,
        "sha256(preimage) = hash"
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000 - 20_001 - 21, 0, 50_000 - 20_001 - 21),
        "amount + fee debited, the rest of maxFeeMsat released"
    );
    let (status, read) = service.withdrawal(&key, REGTEST, &hash).await;
    assert_eq!(status, 200);
    assert_eq!(read, paid, "GET answers as the withdrawal did");
    // The network in its lnbtc form.
    let (invoice, _) = service.external(1_000, REGTEST_ID, "succeed").await;
    let (status, paid) = service.withdraw(&key, REGTEST_ID, &invoice, 1).await;
    assert_eq!(
        (status, &paid["state"]),
        (200, &json!("succeeded")),
        "{paid}"
    );
    assert_eq!(
        service.balances(&key, REGTEST_ID).await,
        (50_000 - 20_022 - 1_001, 0, 50_000 - 20_022 - 1_001)
    );
    service.audit().await;
}

#[tokio::test]
async fn a_withdrawal_right_after_a_deposits_payment_counts_the_deposit() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    // Paid, but never read: the withdrawal itself asks the node about the deposit.
    let (status, deposit) = service
        .post(
            "/accounts/deposits",
            &json!({ "network": REGTEST, "account": key.account(), "amount": "30000" }),
        )
        .await;
    assert_eq!(status, 201, "{deposit}");
    let (status, paid) = service
        .post("/pay", &json!({ "invoice": deposit["invoice"] }))
        .await;
    assert_eq!(status, 200, "{paid}");
    let (invoice, _) = service.external(20_000, REGTEST, "succeed").await;
    let (status, withdrawn) = service.withdraw(&key, REGTEST, &invoice, 100).await;
    assert_eq!(
        (status, &withdrawn["state"]),
        (200, &json!("succeeded")),
        "{withdrawn}"
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (30_000 - 20_020, 0, 30_000 - 20_020)
    );
    service.audit().await;
}

#[tokio::test]
async fn a_failed_withdrawal_leaves_the_balance_and_may_be_tried_again() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (invoice, hash) = service.external(10_000, REGTEST, "fail").await;
    let (status, failed) = service.withdraw(&key, REGTEST, &invoice, 50).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["paymentHash"], hash);
    assert_eq!(failed["amount"], "10000");
    assert_eq!(failed["feeMsat"], "0");
    assert!(failed["reason"].is_string(), "a reason: {failed}");
    assert!(failed.get("preimage").is_none(), "{failed}");
    let (status, read) = service.withdrawal(&key, REGTEST, &hash).await;
    assert_eq!(
        (status, &read),
        (200, &failed),
        "GET answers as the withdrawal did"
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 0, 50_000),
        "as before"
    );
    // Tried again: allowed (fails again, the network still has no route).
    let (status, again) = service.withdraw(&key, REGTEST, &invoice, 50).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["state"], "failed");
    // The route appears: the next try succeeds.
    let (status, _) = service
        .post(&format!("/pay/external/{hash}/settle"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, paid) = service.withdraw(&key, REGTEST, &invoice, 50).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["state"], "succeeded", "{paid}");
    assert_eq!(service.balances(&key, REGTEST).await, (39_990, 0, 39_990));
    service.audit().await;
}

#[tokio::test]
async fn a_pending_withdrawal_answers_202_and_is_settled_in_the_background() {
    let dir = tempdir();
    let service = Svc::start(
        dir.path(),
        &[("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "300")],
    );
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (invoice, hash) = service.external(10_000, REGTEST, "pending").await;
    let (status, pending) = service.withdraw(&key, REGTEST, &invoice, 40).await;
    assert_eq!(status, 202, "{pending}");
    assert_eq!(
        pending,
        json!({ "paymentHash": hash, "state": "pending", "amount": "10000", "feeMsat": "0" })
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 10_040, 39_960),
        "amount + maxFeeMsat held"
    );
    let (status, read) = service.withdrawal(&key, REGTEST, &hash).await;
    assert_eq!((status, &read["state"]), (202, &json!("pending")), "{read}");

    let (status, decided) = service
        .post(&format!("/pay/external/{hash}/settle"), &json!({}))
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        decided,
        json!({ "paymentHash": hash, "state": "succeeded" })
    );
    #[allow(unused_assignments)]
    let mut last = Value::Null;
    let succeeded = eventually!({
        let (status, read) = service.withdrawal(&key, REGTEST, &hash).await;
        last = read;
        status == 200 && last["state"] == "succeeded"
    });
    assert!(succeeded, "the tracker records the outcome: {last}");
    assert_eq!(last["feeMsat"], "10");
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (39_990, 0, 39_990),
        "debited once"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (39_990, 0, 39_990),
        "still once"
    );
    service.audit().await;
}

#[tokio::test]
async fn a_pending_withdrawal_that_fails_releases_its_hold() {
    let dir = tempdir();
    let service = Svc::start(
        dir.path(),
        &[("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "300")],
    );
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (invoice, hash) = service.external(10_000, REGTEST, "pending").await;
    assert_eq!(service.withdraw(&key, REGTEST, &invoice, 40).await.0, 202);
    assert_eq!(
        service
            .post(&format!("/pay/external/{hash}/fail"), &json!({}))
            .await
            .0,
        200
    );
    #[allow(unused_assignments)]
    let mut last = Value::Null;
    let failed = eventually!({
        let (status, read) = service.withdrawal(&key, REGTEST, &hash).await;
        last = read;
        status == 200 && last["state"] == "failed"
    });
    assert!(failed, "{last}");
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    service.audit().await;
}

#[tokio::test]
async fn a_second_withdrawal_of_an_invoice_in_flight_is_409() {
    let dir = tempdir();
    let service = Svc::start(
        dir.path(),
        &[("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "300")],
    );
    let key = random_key();
    let other = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    service.fund(&other, REGTEST, 50_000).await;
    let (invoice, hash) = service.external(10_000, REGTEST, "pending").await;
    assert_eq!(service.withdraw(&key, REGTEST, &invoice, 40).await.0, 202);
    for (case, payer) in [("the same account", &key), ("another account", &other)] {
        let (status, conflict) = service.withdraw(payer, REGTEST, &invoice, 40).await;
        assert_eq!(status, 409, "{case}: {conflict}");
        assert!(conflict["error"].is_string(), "{conflict}");
    }
    assert_eq!(
        service.balances(&other, REGTEST).await,
        (50_000, 0, 50_000),
        "nothing held"
    );
    assert_eq!(
        service
            .post(&format!("/pay/external/{hash}/settle"), &json!({}))
            .await
            .0,
        200
    );
    assert!(eventually!(
        service.withdrawal(&key, REGTEST, &hash).await.1["state"] == "succeeded"
    ));
    assert_eq!(service.balances(&key, REGTEST).await, (39_990, 0, 39_990));
}

#[tokio::test]
async fn a_withdrawal_of_an_invoice_already_paid_is_duplicate_settlement() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let other = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    service.fund(&other, REGTEST, 50_000).await;
    let (invoice, _) = service.external(10_000, REGTEST, "succeed").await;
    assert_eq!(
        service.withdraw(&key, REGTEST, &invoice, 40).await.1["state"],
        "succeeded"
    );
    for (case, payer) in [("the same account", &key), ("another account", &other)] {
        let (status, refused) = service.withdraw(payer, REGTEST, &invoice, 40).await;
        assert_eq!(status, 400, "{case}: {refused}");
        assert_eq!(
            refused["reason"], "duplicate_settlement",
            "{case}: {refused}"
        );
        assert!(refused["error"].is_string());
    }
    assert_eq!(service.balances(&key, REGTEST).await, (39_990, 0, 39_990));
    assert_eq!(service.balances(&other, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn pay_external_mints_invoices_of_another_node_for_withdrawals() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    // `network` defaults to the first served (testnet, then regtest by default).
    let (status, external) = service
        .post("/pay/external", &json!({ "amount": "1000" }))
        .await;
    assert_eq!(status, 201, "{external}");
    let invoice = external["invoice"].as_str().expect("invoice");
    let decoded = decode(invoice).expect("decodes");
    assert_eq!(
        decoded.currency,
        Network::Testnet.currency(),
        "the first served"
    );
    assert_eq!(external["paymentHash"], decoded.payment_hash_hex());
    assert_ne!(decoded.payee.to_string(), node_id(), "another node's");
    assert_eq!(decoded.amount_msat, Some(1_000));
    for (case, bad) in [
        ("outcome", json!({ "amount": "1000", "outcome": "maybe" })),
        ("amount 0", json!({ "amount": "0" })),
        ("amount 010", json!({ "amount": "010" })),
        (
            "unserved network",
            json!({ "amount": "1000", "network": "lightning" }),
        ),
    ] {
        assert_eq!(service.post("/pay/external", &bad).await.0, 400, "{case}");
    }
    let (_, hash) = service.external(1_000, REGTEST_ID, "pending").await;
    for decision in ["settle", "fail"] {
        let (status, decided) = service
            .post(&format!("/pay/external/{hash}/{decision}"), &json!({}))
            .await;
        assert_eq!(status, 200, "{decided}");
        assert_eq!(decided["paymentHash"], hash);
        assert!(decided["state"].is_string(), "{decided}");
    }
    let unknown = "ab".repeat(32);
    assert_eq!(
        service
            .post(&format!("/pay/external/{unknown}/settle"), &json!({}))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn bad_withdrawal_requests_are_400() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (invoice, _) = service.external(1_000, REGTEST, "succeed").await;
    let valid = json!({
        "network": REGTEST,
        "account": key.account(),
        "invoice": invoice,
        "maxFeeMsat": "10",
        "signature": key.sign_withdrawal(&invoice, 10),
    });
    let cases = [
        ("no signature", without(&valid, "/signature")),
        ("no maxFeeMsat", without(&valid, "/maxFeeMsat")),
        ("no invoice", without(&valid, "/invoice")),
        ("maxFeeMsat 010", with(&valid, "/maxFeeMsat", json!("010"))),
        (
            "maxFeeMsat a number",
            with(&valid, "/maxFeeMsat", json!(10)),
        ),
        (
            "account uppercase",
            with(&valid, "/account", json!(key.account().to_uppercase())),
        ),
        (
            "not an invoice",
            with(&valid, "/invoice", json!("lnbcrt1garbage")),
        ),
    ];
    for (case, body) in cases {
        let (status, refused) = service.post("/accounts/withdrawals", &body).await;
        assert_withdrawal_refused(status, &refused, case);
    }
    let (status, refused) = service.post_raw("/accounts/withdrawals", "{").await;
    assert_withdrawal_refused(status, &refused, "not JSON");
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    let (status, paid) = service.post("/accounts/withdrawals", &valid).await;
    assert_eq!(
        (status, &paid["state"]),
        (200, &json!("succeeded")),
        "{paid}"
    );
}

#[tokio::test]
async fn concurrent_withdrawals_of_one_invoice_pay_it_once() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let keys: Vec<AccountKey> = (0..4).map(|_| random_key()).collect();
    for key in &keys {
        service.fund(key, REGTEST, 50_000).await;
    }
    let (invoice, _) = service.external(10_000, REGTEST, "succeed").await;
    let mut tasks = Vec::new();
    for round in 0..12 {
        let key = keys[round % keys.len()].clone();
        let body = json!({
            "network": REGTEST,
            "account": key.account(),
            "invoice": invoice,
            "maxFeeMsat": "10",
            "signature": key.sign_withdrawal(&invoice, 10),
        });
        let (client, url) = (service.client.clone(), service.url("/accounts/withdrawals"));
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut paid = 0;
    for task in tasks {
        let (status, answer) = task.await.expect("joined");
        match status {
            200 => {
                assert_eq!(answer["state"], "succeeded", "{answer}");
                paid += 1;
            }
            400 => assert_eq!(answer["reason"], "duplicate_settlement", "{answer}"),
            409 => {}
            _ => panic!("{status}: {answer}"),
        }
    }
    assert_eq!(paid, 1, "an invoice is never paid twice");
    let mut total = 0;
    for key in &keys {
        total += service.balances(key, REGTEST).await.0;
    }
    assert_eq!(total, 4 * 50_000 - 10_010, "debited once, from one account");
    service.audit().await;
}

#[tokio::test]
async fn concurrent_verify_and_withdrawal_cannot_both_spend_the_funds() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 10_000, 10_000).await;
    let (invoice, _) = service.external(9_990, REGTEST, "succeed").await;
    let withdrawal = json!({
        "network": REGTEST,
        "account": key.account(),
        "invoice": invoice,
        "maxFeeMsat": "10",
        "signature": key.sign_withdrawal(&invoice, 10),
    });
    let spawn = |path: &str, body: Value| {
        let (client, url) = (service.client.clone(), service.url(path));
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let verify = spawn("/verify", good.clone());
    let withdraw = spawn("/accounts/withdrawals", withdrawal);
    let (verify_status, verified) = verify.await.expect("joined");
    let (withdraw_status, withdrawn) = withdraw.await.expect("joined");
    assert_eq!(verify_status, 200, "{verified}");
    let held = verified["isValid"] == true;
    let spent = withdraw_status == 200 && withdrawn["state"] == "succeeded";
    assert!(
        held != spent,
        "exactly one: verify {verified}, withdrawal {withdrawn}"
    );
    if !spent {
        assert_eq!(withdrawn["reason"], "insufficient_funds", "{withdrawn}");
    }
    service.audit().await;
}

/// Asserts a withdrawal refused with 400 `{"error", "reason"}`.
fn assert_withdrawal_refused(status: u16, answer: &Value, case: &str) {
    assert_eq!(status, 400, "{case}: {answer}");
    let object = answer.as_object().expect("an object");
    let mut names: Vec<_> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["error", "reason"], "{case}: {answer}");
}

#[tokio::test]
async fn a_withdrawal_refuses_an_invoice_of_the_node_itself() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let requirements = service.requirements(Network::Regtest, 10_000).await;
    let deposit = service.deposit(REGTEST, &key.account(), 10_000).await;
    for (case, invoice) in [
        ("a /requirements invoice", invoice_of(&requirements)),
        (
            "a deposit invoice",
            deposit["invoice"].as_str().expect("invoice").to_owned(),
        ),
    ] {
        let (status, refused) = service.withdraw(&key, REGTEST, &invoice, 40).await;
        assert_withdrawal_refused(status, &refused, case);
        assert_eq!(
            refused["reason"], "invalid_exact_lightning_invoice_payee",
            "{case}"
        );
    }
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn a_withdrawal_refuses_an_invoice_of_another_network() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (testnet, _) = service.external(10_000, TESTNET, "succeed").await;
    let (status, refused) = service.withdraw(&key, REGTEST, &testnet, 40).await;
    assert_withdrawal_refused(status, &refused, "a testnet invoice from regtest");
    assert_eq!(refused["reason"], "invalid_network");
    let (regtest, _) = service.external(10_000, REGTEST, "succeed").await;
    let (status, refused) = service
        .withdraw(&key, "lightning-signet", &regtest, 40)
        .await;
    assert_withdrawal_refused(status, &refused, "an unserved network");
    assert_eq!(refused["reason"], "invalid_network");
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn a_withdrawal_refuses_an_expired_invoice() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (expired, _) = mint_with(
        &MockNode::random(),
        Network::Regtest,
        10_000,
        unix_now() - 7_200,
        60,
    );
    let (status, refused) = service.withdraw(&key, REGTEST, &expired, 40).await;
    assert_withdrawal_refused(status, &refused, "expired");
    assert_eq!(refused["reason"], "payment_expired");
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn a_withdrawal_refuses_an_invoice_without_an_amount() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let other_node: [u8; 32] = rand::random();
    let amountless = forge(
        &other_node.to_lower_hex_string(),
        Network::Regtest,
        None,
        rand::random(),
        unix_now(),
        3600,
    );
    assert_eq!(
        decode(&amountless).expect("decodes").amount_msat,
        None,
        "amountless"
    );
    let (status, refused) = service.withdraw(&key, REGTEST, &amountless, 40).await;
    assert_withdrawal_refused(status, &refused, "no amount");
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn a_withdrawal_refuses_a_bad_signature() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let other = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    let (invoice, _) = service.external(10_000, REGTEST, "succeed").await;
    let (another_invoice, _) = service.external(10_000, REGTEST, "succeed").await;
    let request = |signature: String| {
        json!({
            "network": REGTEST,
            "account": key.account(),
            "invoice": invoice,
            "maxFeeMsat": "40",
            "signature": signature,
        })
    };
    let good = key.sign_withdrawal(&invoice, 40);
    let cases = [
        ("another key's", other.sign_withdrawal(&invoice, 40)),
        ("over another maxFeeMsat", key.sign_withdrawal(&invoice, 41)),
        (
            "over another invoice",
            key.sign_withdrawal(&another_invoice, 40),
        ),
        (
            "a payment authorization of the invoice",
            sign_raw(&key, &invoice),
        ),
        ("tampered", tampered(&good)),
        ("the high-S twin", high_s_twin(&good)),
        ("not hex", "zz".repeat(64)),
    ];
    for (case, signature) in cases {
        let (status, refused) = service
            .post("/accounts/withdrawals", &request(signature))
            .await;
        assert_withdrawal_refused(status, &refused, case);
        assert_eq!(
            refused["reason"], "invalid_exact_lightning_payload_signature",
            "{case}"
        );
    }
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    let (status, paid) = service.post("/accounts/withdrawals", &request(good)).await;
    assert_eq!(
        (status, &paid["state"]),
        (200, &json!("succeeded")),
        "{paid}"
    );
}

#[tokio::test]
async fn a_withdrawal_refuses_insufficient_funds() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 20_000).await;
    // amount + maxFeeMsat one over what is available.
    let (invoice, _) = service.external(19_981, REGTEST, "succeed").await;
    let (status, refused) = service.withdraw(&key, REGTEST, &invoice, 20).await;
    assert_withdrawal_refused(status, &refused, "amount + maxFee > available");
    assert_eq!(refused["reason"], "insufficient_funds");
    // A hold makes it unavailable too.
    let requirements = service.requirements(Network::Regtest, 1_000).await;
    assert_eq!(
        service.verify(&body(&key, &requirements)).await["isValid"],
        true
    );
    let (small, _) = service.external(18_980, REGTEST, "succeed").await;
    let (status, refused) = service.withdraw(&key, REGTEST, &small, 21).await;
    assert_withdrawal_refused(status, &refused, "a hold is not available");
    assert_eq!(refused["reason"], "insufficient_funds");
    // An account that does not exist.
    let (status, refused) = service.withdraw(&random_key(), REGTEST, &small, 21).await;
    assert_withdrawal_refused(status, &refused, "no account");
    assert_eq!(refused["reason"], "insufficient_funds");
    // Exactly available: paid.
    let (status, paid) = service.withdraw(&key, REGTEST, &small, 20).await;
    assert_eq!(
        (status, &paid["state"]),
        (200, &json!("succeeded")),
        "{paid}"
    );
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (1_000 + 1, 1_000, 1),
        "fee 19 of 20 held"
    );
    service.audit().await;
}

#[tokio::test]
async fn a_withdrawal_whose_fee_is_over_max_fee_fails() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    // 0.1 % of 20,001 rounded up: 21.
    let (invoice, _) = service.external(20_001, REGTEST, "succeed").await;
    let (status, failed) = service.withdraw(&key, REGTEST, &invoice, 20).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["reason"].is_string());
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    let (status, paid) = service.withdraw(&key, REGTEST, &invoice, 21).await;
    assert_eq!(
        (status, &paid["state"], &paid["feeMsat"]),
        (200, &json!("succeeded"), &json!("21"))
    );
}

#[tokio::test]
async fn a_withdrawal_read_needs_the_account_signature() {
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[]);
    let key = random_key();
    let other = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    service.fund(&other, REGTEST, 50_000).await;
    let (invoice, hash) = service.external(10_000, REGTEST, "succeed").await;
    assert_eq!(service.withdraw(&key, REGTEST, &invoice, 40).await.0, 200);
    let path = format!("/accounts/{REGTEST}/{}/withdrawals/{hash}", key.account());
    assert_eq!(service.get_signed(&path, &[]).await.0, 401, "unsigned");
    let foreign = other.account_read_signature(REGTEST, unix_now());
    assert_eq!(
        service.get_signed(&path, &[&foreign]).await.0,
        401,
        "another key's"
    );
    // Another account's read of it: not theirs.
    assert_eq!(service.withdrawal(&other, REGTEST, &hash).await.0, 404);
    assert_eq!(
        service.withdrawal(&key, REGTEST, &"ab".repeat(32)).await.0,
        404
    );
    let (status, read) = service.withdrawal(&key, REGTEST_ID, &hash).await;
    assert_eq!(
        (status, &read["state"]),
        (200, &json!("succeeded")),
        "either id form"
    );
}

#[tokio::test]
async fn a_withdrawal_left_pending_by_a_crash_is_resolved_by_asking_the_node() {
    let dir = tempdir();
    let key = random_key();
    let wait = [("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "200")];
    let hash = {
        let first = Svc::pinned(dir.path(), T, &wait);
        first.fund(&key, REGTEST, 50_000).await;
        let (invoice, hash) = first.external(10_000, REGTEST, "pending").await;
        assert_eq!(first.withdraw(&key, REGTEST, &invoice, 40).await.0, 202);
        first.instance.kill();
        hash
    };
    // Restarted long after: the new node never started this payment, so it is failed (never
    // paid again), and its hold is released.
    let later = T + 600;
    let second = Svc::pinned(dir.path(), later, &wait);
    #[allow(unused_assignments)]
    let mut last = Value::Null;
    let resolved = eventually!({
        let signature = key.account_read_signature(REGTEST, later);
        let (_, read) = second
            .get_signed(
                &format!("/accounts/{REGTEST}/{}/withdrawals/{hash}", key.account()),
                &[&signature],
            )
            .await;
        last = read;
        last["state"] != "pending"
    });
    assert!(resolved, "resolved at start: {last}");
    assert_eq!(last["state"], "failed", "{last}");
    assert_eq!(
        second.balances_at(&key, REGTEST, later).await,
        (50_000, 0, 50_000)
    );
    second.audit().await;
}

// ---------------------------------------------------------------------------------------------
// Store failures.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_store_failure_is_503_never_a_verdict() {
    use sqlx::Connection as _;
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    // Another writer holds the SQLite file longer than the service waits for it (5 s).
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&service.db);
    let mut blocker = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("opens");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("takes the write lock");
    let started = Instant::now();
    let verify = {
        let (client, url, body) = (service.client.clone(), service.url("/verify"), good.clone());
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let settle = {
        let (client, url, body) = (service.client.clone(), service.url("/settle"), good.clone());
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let answers = [verify.await.expect("joined"), settle.await.expect("joined")];
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("releases");
    blocker.close().await.expect("closes");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
    for (status, answer) in &answers {
        assert_eq!(*status, 503, "the store failed: no verdict: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        assert!(
            answer.get("isValid").is_none() && answer.get("success").is_none(),
            "{answer}"
        );
    }
    // Nothing was decided: once the store answers, the payment goes through, once.
    assert_eq!(service.settle(&good).await["success"], true);
    assert_eq!(service.balances(&key, REGTEST).await, (40_000, 0, 40_000));
    service.audit().await;
}

// ---------------------------------------------------------------------------------------------
// API keys.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn api_keys_guard_verify_settle_and_requirements_but_not_the_accounts() {
    const KEY: &str = "part3-api-key";
    let dir = tempdir();
    let service = Svc::start(dir.path(), &[("X402_FACILITATOR_API_KEYS", KEY)]);
    let request = serde_json::to_value(text_request(Network::Regtest, 10_000, 60)).expect("JSON");
    assert_eq!(
        service.post("/requirements", &request).await.0,
        401,
        "/requirements"
    );
    assert_eq!(
        service
            .post_bearer("/requirements", &request, "wrong")
            .await
            .0,
        401
    );
    let (status, requirements) = service.post_bearer("/requirements", &request, KEY).await;
    assert_eq!(status, 200, "{requirements}");

    // The accounts' routes need no API key.
    let key = random_key();
    service.fund(&key, REGTEST, 50_000).await;
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    let (invoice, hash) = service.external(1_000, REGTEST, "succeed").await;
    assert_eq!(service.withdraw(&key, REGTEST, &invoice, 10).await.0, 200);
    assert_eq!(service.withdrawal(&key, REGTEST, &hash).await.0, 200);

    let good = body(&key, &requirements);
    for path in ["/verify", "/settle"] {
        assert_eq!(
            service.post(path, &good).await.0,
            401,
            "{path} without a key"
        );
        assert_eq!(
            service.post_bearer(path, &good, "wrong").await.0,
            401,
            "{path} wrong key"
        );
    }
    let (status, verified) = service.post_bearer("/verify", &good, KEY).await;
    assert_eq!(
        (status, &verified["isValid"]),
        (200, &json!(true)),
        "{verified}"
    );
    let (status, settled) = service.post_bearer("/settle", &good, KEY).await;
    assert_eq!(
        (status, &settled["success"]),
        (200, &json!(true)),
        "{settled}"
    );
}

// ---------------------------------------------------------------------------------------------
// Money is audited.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn money_is_journaled_for_every_credit_hold_debit_and_release() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    assert_eq!(service.verify(&good).await["isValid"], true);
    assert_eq!(service.settle(&good).await["success"], true);
    let (invoice, _) = service.external(20_000, REGTEST, "succeed").await;
    assert_eq!(
        service.withdraw(&key, REGTEST, &invoice, 100).await.1["state"],
        "succeeded"
    );
    let pool = service.books().await;
    let rows =
        sqlx::query("SELECT kind, amount_msat FROM journal WHERE account = $1 ORDER BY rowid")
            .bind(key.account())
            .fetch_all(&pool)
            .await
            .expect("reads");
    pool.close().await;
    let journal: Vec<(String, i64)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    let expected: Vec<(String, i64)> = [
        ("credit", 50_000),
        ("hold", 10_000),
        ("release", 10_000),
        ("debit", 10_000),
        ("hold", 20_100),
        ("release", 20_100),
        ("debit", 20_020),
    ]
    .into_iter()
    .map(|(kind, amount)| (kind.to_owned(), amount))
    .collect();
    assert_eq!(journal, expected);
    assert_eq!(service.balances(&key, REGTEST).await, (19_980, 0, 19_980));
    service.audit().await;
}

// ---------------------------------------------------------------------------------------------
// The seed document's facilitator MUSTs ("Security Considerations").
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn must_store_invoice_metadata_with_payment_hash_indexing() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    let (hashed, _) = service
        .hashed_requirements(Network::Testnet, 7_000, 300)
        .await;
    let pool = service.books().await;
    for (requirements, network, amount, expiry) in [
        (&requirements, REGTEST, 10_000_i64, 60_u64),
        (&hashed, TESTNET, 7_000, 300),
    ] {
        let invoice = invoice_of(requirements);
        let decoded = decode(&invoice).expect("decodes");
        let row = sqlx::query(
            "SELECT network, invoice, amount_msat, expires_at, resource FROM invoices WHERE payment_hash = $1",
        )
        .bind(decoded.payment_hash_hex())
        .fetch_one(&pool)
        .await
        .expect("recorded under its payment hash");
        assert_eq!(row.get::<String, _>(0), network);
        assert_eq!(row.get::<String, _>(1), invoice);
        assert_eq!(row.get::<i64, _>(2), amount);
        assert_eq!(
            u64::try_from(row.get::<i64, _>(3)).expect("positive"),
            decoded.created_at + expiry
        );
        assert_eq!(
            row.get::<String, _>(4),
            requirements["resource"].as_str().expect("resource")
        );
    }
    // Indexed by payment hash: the primary key (a unique index).
    let indexes = sqlx::query("PRAGMA index_list('invoices')")
        .fetch_all(&pool)
        .await
        .expect("reads");
    let mut unique_on_hash = false;
    for index in &indexes {
        let name: String = index.get("name");
        let unique: i64 = index.get("unique");
        let columns = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_info('{name}')")))
            .fetch_all(&pool)
            .await
            .expect("reads");
        let columns: Vec<String> = columns.iter().map(|column| column.get("name")).collect();
        unique_on_hash |= unique == 1 && columns == ["payment_hash"];
    }
    pool.close().await;
    assert!(unique_on_hash, "a unique index on invoices(payment_hash)");

    // Looked up by payment hash, compared in full: an invoice of the node with the same
    // payment hash but other terms is not the recorded one.
    let recorded = decode(&invoice_of(&requirements)).expect("decodes");
    let twin = forge(
        NODE_KEY,
        Network::Regtest,
        Some(10_000),
        recorded.payment_hash,
        recorded.created_at,
        3_600,
    );
    assert_eq!(hash_of(&twin), recorded.payment_hash_hex());
    assert_invalid(
        &service.verify(&paying(&good, &key, &twin)).await,
        "invalid_exact_lightning_invoice_unknown",
        Some(&key.account()),
        "same payment hash, other invoice",
    );
    assert_eq!(
        service.verify(&good).await,
        json!({ "isValid": true, "payer": key.account() }),
        "the recorded one"
    );
}

#[tokio::test]
async fn must_validate_client_signatures() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    let other = random_key();
    let signature = good["paymentPayload"]["payload"]["signature"]
        .as_str()
        .expect("signature")
        .to_owned();
    let invoice = invoice_of(&good["paymentRequirements"]);
    let read_signature = key.account_read_signature(REGTEST, unix_now());
    let cases = [
        (
            "tampered",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(tampered(&signature)),
            ),
        ),
        ("by another key", signed_by(&good, &other)),
        (
            "high-S twin",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(high_s_twin(&signature)),
            ),
        ),
        (
            "a withdrawal signature",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(key.sign_withdrawal(&invoice, 0)),
            ),
        ),
        (
            "an account-read signature",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(read_signature.split_once('.').expect("dot").1),
            ),
        ),
        (
            "truncated",
            with(
                &good,
                "/paymentPayload/payload/signature",
                json!(&signature[..126]),
            ),
        ),
        (
            "from another account",
            with(
                &good,
                "/paymentPayload/payload/from",
                json!(other.account()),
            ),
        ),
    ];
    for (case, body) in cases {
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_payload_signature",
            None,
            case,
        );
        assert_refused(
            &service.settle(&body).await,
            "invalid_exact_lightning_payload_signature",
            REGTEST,
            None,
            case,
        );
    }
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (50_000, 0, 50_000),
        "nothing moved"
    );
    assert_eq!(
        service.settle(&good).await["success"],
        true,
        "the account's own signature"
    );
}

#[tokio::test]
async fn must_verify_authorization_corresponds_to_a_generated_invoice() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    let now = unix_now();
    let node = MockNode::from_secret_hex(NODE_KEY).expect("key");
    let (unrecorded, _) = mint_with(&node, Network::Regtest, 10_000, now, 60);
    let (foreign, _) = mint_with(&MockNode::random(), Network::Regtest, 10_000, now, 60);
    let deposit = service.deposit(REGTEST, &key.account(), 10_000).await;
    let deposit_invoice = deposit["invoice"].as_str().expect("invoice").to_owned();
    for (case, invoice) in [
        ("the node's key, never handed out", &unrecorded),
        ("another node's", &foreign),
        ("a deposit invoice", &deposit_invoice),
    ] {
        let body = paying(&good, &key, invoice);
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_invoice_unknown",
            Some(&key.account()),
            case,
        );
        assert_refused(
            &service.settle(&body).await,
            "invalid_exact_lightning_invoice_unknown",
            REGTEST,
            Some(&key.account()),
            case,
        );
    }
    // The authorization must be for the requirements' own invoice.
    let elsewhere = with(
        &paying(&good, &key, &unrecorded),
        "/paymentRequirements/extra/invoice",
        good["paymentRequirements"]["extra"]["invoice"].clone(),
    );
    assert_invalid(
        &service.verify(&elsewhere).await,
        "invalid_payload",
        None,
        "payload ≠ extra",
    );
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
}

#[tokio::test]
async fn must_prevent_authorization_reuse() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    // One authorization, sent many times at once: paid once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = service.client.clone();
        let url = service.url("/settle");
        let body = good.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut successes = 0;
    for task in tasks {
        let (status, verdict) = task.await.expect("joined");
        assert_eq!(status, 200, "{verdict}");
        successes += usize::from(verdict["success"] == true);
    }
    assert_eq!(successes, 1, "the payment hash is the nonce");
    // Replayed later, at verify and at settle; by another account too.
    assert_invalid(
        &service.verify(&good).await,
        "duplicate_settlement",
        Some(&key.account()),
        "verify replay",
    );
    assert_refused(
        &service.settle(&good).await,
        "duplicate_settlement",
        REGTEST,
        Some(&key.account()),
        "settle replay",
    );
    let other = random_key();
    service.fund(&other, REGTEST, 50_000).await;
    assert_refused(
        &service.settle(&body(&other, &requirements)).await,
        "duplicate_settlement",
        REGTEST,
        Some(&other.account()),
        "another account",
    );
    assert_eq!(service.balances(&key, REGTEST).await, (40_000, 0, 40_000));
    assert_eq!(service.balances(&other, REGTEST).await, (50_000, 0, 50_000));
    service.audit().await;
}

#[tokio::test]
async fn must_validate_invoice_amounts_match_requirements() {
    let dir = tempdir();
    let (service, key, _, good) = funded(dir.path(), 50_000, 10_000).await;
    for amount in ["1", "9999", "10001", "1000000"] {
        let body = with(
            &good,
            "/paymentRequirements/maxAmountRequired",
            json!(amount),
        );
        assert_invalid(
            &service.verify(&body).await,
            "invalid_exact_lightning_invoice_amount",
            Some(&key.account()),
            amount,
        );
        assert_refused(
            &service.settle(&body).await,
            "invalid_exact_lightning_invoice_amount",
            REGTEST,
            Some(&key.account()),
            amount,
        );
    }
    for amount in ["0", "010000", "1e4", ""] {
        let body = with(
            &good,
            "/paymentRequirements/maxAmountRequired",
            json!(amount),
        );
        let verdict = service.verify(&body).await;
        assert_eq!(verdict["isValid"], false, "{amount}: {verdict}");
    }
    assert_eq!(service.balances(&key, REGTEST).await, (50_000, 0, 50_000));
    assert_eq!(service.settle(&good).await["success"], true);
    assert_eq!(
        service.balances(&key, REGTEST).await,
        (40_000, 0, 40_000),
        "exactly the amount"
    );
}

#[tokio::test]
async fn must_handle_invoice_expiry_and_authorization_timeouts() {
    let dir = tempdir();
    let key = random_key();
    let (first_body, second_body, deposit_hash) = {
        let first = Svc::pinned(
            dir.path(),
            T,
            &[("X402_FACILITATOR_DEPOSIT_EXPIRY_SECONDS", "60")],
        );
        first.fund(&key, REGTEST, 10_000).await;
        let first_body = body(
            &key,
            &first
                .requirements_for(&text_request(Network::Regtest, 10_000, 60))
                .await,
        );
        let second_body = body(
            &key,
            &first
                .requirements_for(&text_request(Network::Regtest, 10_000, 600))
                .await,
        );
        assert_eq!(first.verify(&first_body).await["isValid"], true);
        // The authorization holds the account's funds: nothing else can be paid meanwhile.
        assert_invalid(
            &first.verify(&second_body).await,
            "insufficient_funds",
            Some(&key.account()),
            "while held",
        );
        assert_eq!(
            first.balances_at(&key, REGTEST, T).await,
            (10_000, 10_000, 0)
        );
        let deposit = first.deposit(REGTEST, &key.account(), 1_000).await;
        (
            first_body,
            second_body,
            deposit["paymentHash"].as_str().expect("hash").to_owned(),
        )
    };
    // After the first invoice's end + skew, its authorization has timed out: the hold is gone,
    // the invoice can no longer be paid, the deposit invoice has expired.
    let later = T + 60 + SKEW + 1;
    let second = Svc::pinned(dir.path(), later, &[]);
    assert_eq!(
        second.balances_at(&key, REGTEST, later).await,
        (10_000, 0, 10_000),
        "hold released"
    );
    assert_invalid(
        &second.verify(&first_body).await,
        "payment_expired",
        Some(&key.account()),
        "an expired invoice at verify",
    );
    assert_refused(
        &second.settle(&first_body).await,
        "payment_expired",
        REGTEST,
        Some(&key.account()),
        "an expired invoice at settle",
    );
    let (_, deposit) = second
        .get(&format!("/accounts/deposits/{deposit_hash}"))
        .await;
    assert_eq!(deposit["state"], "expired", "{deposit}");
    // The funds are free again for the other invoice.
    assert_eq!(
        second.verify(&second_body).await,
        json!({ "isValid": true, "payer": key.account() })
    );
    second.audit().await;
}

#[tokio::test]
async fn must_secure_lightning_credentials() {
    let dir = tempdir();
    let (service, key, requirements, good) = funded(dir.path(), 50_000, 10_000).await;
    let (hashed, request_hash) = service
        .hashed_requirements(Network::Regtest, 5_000, 300)
        .await;
    assert_eq!(service.verify(&good).await["isValid"], true);
    assert_eq!(service.settle(&good).await["success"], true);
    let (status, paid) = service.pay(&invoice_of(&hashed)).await;
    assert_eq!(status, 200);
    let lnbtc_preimage = paid["preimage"].as_str().expect("preimage").to_owned();
    assert_eq!(
        service
            .settle(&lnbtc_body(&hashed, &request_hash, &lnbtc_preimage))
            .await["success"],
        true
    );
    let (invoice, _) = service.external(10_000, REGTEST, "succeed").await;
    let (_, withdrawal) = service.withdraw(&key, REGTEST, &invoice, 100).await;
    assert_eq!(withdrawal["state"], "succeeded");
    // Errors of every kind.
    service.post_raw("/settle", "{").await;
    service
        .post("/verify", &signed_by(&good, &random_key()))
        .await;
    service
        .post("/accounts/withdrawals", &json!({ "network": REGTEST }))
        .await;
    service.get("/accounts/deposits/zz").await;
    service.account(&random_key(), REGTEST).await;
    service.get("/supported").await;
    service.get("/metrics").await;
    service.get("/healthz").await;

    let settle_preimage = service
        .recorded_preimage(&hash_of(&invoice_of(&requirements)))
        .await;
    let signature = good["paymentPayload"]["payload"]["signature"]
        .as_str()
        .expect("sig");
    let secrets = [
        ("the node secret key", NODE_KEY.to_owned()),
        ("the node secret key (uppercase)", NODE_KEY.to_uppercase()),
        ("the preimage of the v1 settle", settle_preimage),
        ("the authorization signature", signature.to_owned()),
    ];
    let bodies = service.bodies();
    let log = service.instance.log_text();
    for (what, secret) in &secrets {
        assert!(
            !bodies.contains(secret.as_str()),
            "no response carries {what}"
        );
        assert!(!log.contains(secret.as_str()), "the log never holds {what}");
    }
    // `--help` with the key in the environment does not print it.
    let help = common::command(&[("X402_FACILITATOR_NODE_KEY", NODE_KEY)])
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("NODE_KEY"), "{help}");
    assert!(
        !help.contains(NODE_KEY),
        "--help does not show the key's value"
    );
}

// ---------------------------------------------------------------------------------------------
// Logs.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_log_holds_no_preimage_or_signature_after_a_full_seed_flow() {
    assert_no_secret_logged_after_a_full_seed_flow("info").await;
}

#[tokio::test]
async fn the_debug_log_holds_no_preimage_or_signature_after_a_full_seed_flow() {
    assert_no_secret_logged_after_a_full_seed_flow("debug").await;
}

/// A full seed flow (deposit, verify, settle, a withdrawal paid at once and one tracked in the
/// background, reads) on a service logging at `rust_log`; then no preimage, signature or node
/// key is in its log.
async fn assert_no_secret_logged_after_a_full_seed_flow(rust_log: &str) {
    let dir = tempdir();
    let service = Svc::start(
        dir.path(),
        &[
            ("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "300"),
            ("RUST_LOG", rust_log),
        ],
    );
    let key = random_key();
    let deposit = service.deposit(REGTEST, &key.account(), 60_000).await;
    let (_, paid) = service
        .pay(deposit["invoice"].as_str().expect("invoice"))
        .await;
    let deposit_preimage = paid["preimage"].as_str().expect("preimage").to_owned();
    let deposit_hash = deposit["paymentHash"].as_str().expect("hash");
    let (_, state) = service
        .get(&format!("/accounts/deposits/{deposit_hash}"))
        .await;
    assert_eq!(state["state"], "credited", "{state}");
    let requirements = service.requirements(Network::Regtest, 10_000).await;
    let good = body(&key, &requirements);
    assert_eq!(service.verify(&good).await["isValid"], true);
    assert_eq!(service.settle(&good).await["success"], true);
    let (invoice, _) = service.external(20_000, REGTEST, "succeed").await;
    let (_, withdrawal) = service.withdraw(&key, REGTEST, &invoice, 100).await;
    assert_eq!(withdrawal["state"], "succeeded", "{withdrawal}");
    let (pending_invoice, pending_hash) = service.external(5_000, REGTEST, "pending").await;
    assert_eq!(
        service
            .withdraw(&key, REGTEST, &pending_invoice, 10)
            .await
            .0,
        202
    );
    service
        .post(&format!("/pay/external/{pending_hash}/settle"), &json!({}))
        .await;
    #[allow(unused_assignments)]
    let mut pending_preimage = String::new();
    assert!(eventually!({
        let (_, read) = service.withdrawal(&key, REGTEST, &pending_hash).await;
        pending_preimage = read["preimage"].as_str().unwrap_or_default().to_owned();
        !pending_preimage.is_empty()
    }));
    let read_signature = key.account_read_signature(REGTEST, unix_now());
    let (status, _) = service
        .get_signed(
            &format!("/accounts/{REGTEST}/{}", key.account()),
            &[&read_signature],
        )
        .await;
    assert_eq!(status, 200);

    let settle_preimage = service
        .recorded_preimage(&hash_of(&invoice_of(&requirements)))
        .await;
    let secrets = [
        ("the deposit's preimage", deposit_preimage),
        ("the settle's preimage", settle_preimage),
        (
            "the withdrawal's preimage",
            withdrawal["preimage"]
                .as_str()
                .expect("preimage")
                .to_owned(),
        ),
        ("the tracked withdrawal's preimage", pending_preimage),
        (
            "the authorization signature",
            good["paymentPayload"]["payload"]["signature"]
                .as_str()
                .expect("sig")
                .to_owned(),
        ),
        (
            "the withdrawal signature",
            key.sign_withdrawal(&invoice, 100),
        ),
        (
            "an account-read signature",
            read_signature.split_once('.').expect("dot").1.to_owned(),
        ),
        ("the node secret key", NODE_KEY.to_owned()),
    ];
    let log = service.instance.log_text();
    assert!(
        log.contains("settled inside the books"),
        "the log is the service's: {log}"
    );
    for (what, secret) in &secrets {
        assert!(!log.contains(secret.as_str()), "the log holds {what}");
    }
}
