//! Shared by the service's integration tests: the service binary started as a real process,
//! valid `lnbtc` proofs minted on the spot, and the PostgreSQL database of the machine.

#![allow(dead_code)] // each test crate uses its own part of this module

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bitcoin::hex::DisplayHex as _;
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::lnbtc::types::{
    LnbtcExtra, PaymentPayload, PaymentRequirements, SettleRequest,
};
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning_facilitator::store::{SqliteStore, Store};
use x402_lightning_facilitator::{Service, serve};

/// The service binary, built by cargo for the integration tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_x402-lightning-facilitator");

/// A running service process; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Instance {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr (the log).
    pub log: PathBuf,
}

/// How a start of the binary ended.
pub enum Started {
    /// It printed its address.
    Listening(Instance),
    /// It exited first: its status and its log.
    Exited(ExitStatus, String),
}

/// The binary's command with `env`, without any `X402_FACILITATOR_*` or `RUST_LOG` variable of
/// the test's own environment.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("X402_FACILITATOR_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
}

impl Instance {
    /// Starts the binary with `env` on top of a free loopback port and `RUST_LOG=info`, and
    /// waits for its `listening on http://ADDR` line. `dir` holds its log. Panics if it exits
    /// first.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Instance {
        match Instance::try_start(dir, env) {
            Started::Listening(instance) => instance,
            Started::Exited(status, log) => panic!("the service exited ({status}): {log}"),
        }
    }

    /// Starts the binary as [`start`](Self::start) does; waits for its address or its exit
    /// (at most 60 s).
    pub fn try_start(dir: &Path, env: &[(&str, &str)]) -> Started {
        let log = dir.join(format!("service-{}.log", rand_suffix()));
        let stderr = File::create(&log).expect("log file");
        let mut command = command(&[
            ("X402_FACILITATOR_BIND", "127.0.0.1:0"),
            ("RUST_LOG", "info"),
        ]);
        command
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().expect("the service binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, line) = mpsc::channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines() {
                let Ok(text) = text else { break };
                if lines.send(text).is_err() {
                    break;
                }
            }
        });
        loop {
            match line.recv_timeout(Duration::from_secs(60)) {
                Ok(text) => {
                    if let Some(addr) = text.strip_prefix("listening on http://") {
                        let addr = addr.parse().expect("a socket address");
                        return Started::Listening(Instance { child, addr, log });
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("reaped");
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Started::Exited(status, text);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the service neither listened nor exited in 60 s: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
    }

    /// Asks the process to stop (SIGTERM) and waits for it (at most 60 s); returns whether it
    /// exited cleanly.
    pub fn terminate(self) -> bool {
        self.sigterm();
        self.wait_exit(Duration::from_secs(60))
            .is_some_and(|status| status.success())
    }

    /// Waits for the process to exit, at most `limit`; `None` if it did not (then kills it).
    pub fn wait_exit(mut self, limit: Duration) -> Option<ExitStatus> {
        let pid = self.child.id();
        let (done, exited) = mpsc::channel();
        let mut child = std::mem::replace(
            &mut self.child,
            // A placeholder: `true` exits at once; Drop reaps it.
            Command::new("true").spawn().expect("true runs"),
        );
        std::thread::spawn(move || {
            let _ = done.send(child.wait());
        });
        match exited.recv_timeout(limit) {
            Ok(status) => Some(status.expect("wait")),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                let _ = exited.recv_timeout(Duration::from_secs(30));
                None
            }
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> String {
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes.to_lower_hex_string()
}

/// A SQLite store in a file of `dir`, migrated.
pub async fn sqlite_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&sqlite_url(dir)).await.expect("opens"))
}

/// Serves `service` in process on a loopback port until the test ends; its address.
pub async fn serve_on_loopback(service: Arc<Service>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, service, std::future::pending()));
    addr
}

/// A `/requirements` request for 10 sat on regtest (`PROTOCOL.md` Part 1), bound to the request
/// hash `description_hash` (64 hex, Part 2's `descriptionHash`), or described by its text when
/// `None`.
pub fn requirements_request(description_hash: Option<&str>) -> Value {
    let mut request = json!({
        "x402Version": 1,
        "scheme": "exact",
        "network": "lightning-regtest",
        "amount": "10000",
        "resource": "http://shop.example/weather",
        "description": "weather",
        "mimeType": "application/json",
        "maxTimeoutSeconds": 60,
    });
    if let Some(hash) = description_hash {
        request["descriptionHash"] = json!(hash);
    }
    request
}

/// A `sqlite://` URL for a fresh file in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("replay.db").display())
}

/// A paid invoice and the `/settle` body that proves it.
#[derive(Clone, Debug)]
pub struct Proof {
    /// The requirements the invoice was minted for.
    pub requirements: PaymentRequirements,
    /// The preimage, 64 lowercase hex characters.
    pub preimage: String,
    /// The payment hash, 64 lowercase hex characters.
    pub payment_hash: String,
}

impl Proof {
    /// A fresh invoice of `node` on `network`, created at `now` (Unix seconds), 10,000 msat,
    /// expiring after 300 s, bound to a random request hash, and its preimage.
    pub fn mint(node: &MockNode, network: Network, now: u64) -> Proof {
        Proof::mint_with(node, network, now, 10_000, 300)
    }

    /// A proof minted with any terms: `node` signs an invoice of `amount_msat` on `network`,
    /// created at `created_at`, expiring after `expiry_secs`, bound to a random request hash.
    pub fn mint_with(
        node: &MockNode,
        network: Network,
        created_at: u64,
        amount_msat: u64,
        expiry_secs: u64,
    ) -> Proof {
        let mut request_hash = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut request_hash);
        let minted = node
            .mint(&InvoiceSpec {
                network,
                amount_msat,
                description: String::new(),
                description_hash: Some(request_hash),
                created_at: Duration::from_secs(created_at),
                expiry: Duration::from_secs(expiry_secs),
            })
            .expect("mints");
        let requirements = PaymentRequirements::lnbtc(
            network,
            amount_msat,
            node.pay_to().to_string(),
            expiry_secs,
            LnbtcExtra {
                invoice: minted.invoice.to_string(),
                request_hash: request_hash.to_lower_hex_string(),
                request_binding_profile: "http:1".into(),
                request_binding_params: serde_json::json!({ "headers": [] }),
            },
        );
        Proof {
            requirements,
            preimage: minted.preimage.to_lower_hex_string(),
            payment_hash: minted.invoice.payment_hash().to_string(),
        }
    }

    /// The `POST /settle` body.
    pub fn settle_body(&self) -> Value {
        let payload = PaymentPayload::lnbtc(None, self.requirements.clone(), self.preimage.clone());
        let payload = serde_json::to_value(payload).expect("serializes");
        serde_json::to_value(SettleRequest::new(payload, &self.requirements)).expect("serializes")
    }
}

/// The machine's PostgreSQL for the tests that need one: the URL in
/// `X402_FACILITATOR_TEST_POSTGRES_URL` (`.ci/run` sets it to
/// `postgres://postgres@127.0.0.1:5432/test`). `None` when unset: the test says it is skipped.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("X402_FACILITATOR_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "{test}: skipped, set X402_FACILITATOR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test to run it"
            );
            None
        }
    }
}

/// A schema of its own in the machine's PostgreSQL database, for one test.
#[derive(Debug)]
pub struct PgSchema {
    base: String,
    name: String,
    /// A URL that puts every connection in the schema (parallel tests never see each other's
    /// tables).
    pub url: String,
}

impl PgSchema {
    /// Creates a fresh schema in the database `base`. Panics when the server is unreachable.
    pub async fn create(base: &str) -> PgSchema {
        let name = format!("x402_test_{}", rand_suffix());
        execute(base, format!("CREATE SCHEMA {name}")).await;
        let separator = if base.contains('?') { '&' } else { '?' };
        PgSchema {
            url: format!("{base}{separator}options=-c%20search_path%3D{name}"),
            base: base.to_owned(),
            name,
        }
    }

    /// Drops the schema and everything in it.
    pub async fn drop_all(self) {
        execute(&self.base, format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

async fn execute(base: &str, statement: String) {
    let pool = sqlx::PgPool::connect(base)
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL at {base} is unreachable: {err}"));
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&pool)
        .await
        .expect("schema statement");
    pool.close().await;
}

/// The seed flow against a running service: funding an account through the simulated node,
/// requirements, signed payloads and reads.
pub mod seed {
    use serde_json::{Value, json};
    use x402_lightning::types::{PaymentRequirements, RequirementsRequest};
    use x402_lightning::v1::AccountKey;

    /// The current Unix time, seconds.
    pub fn unix_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0)
    }

    /// Signs any `message` with `key` as the seed scheme signs (SHA-256, 64-byte compact
    /// ECDSA, hex): for tests that sign what `AccountKey`'s purpose-bound methods refuse (a
    /// string that is not an invoice, a message of another spelling).
    pub fn sign_raw(key: &AccountKey, message: &str) -> String {
        use bitcoin::hashes::{Hash as _, sha256};
        use bitcoin::hex::DisplayHex as _;
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let digest = bitcoin::secp256k1::Message::from_digest(
            sha256::Hash::hash(message.as_bytes()).to_byte_array(),
        );
        secp.sign_ecdsa(&digest, key.secret_key())
            .serialize_compact()
            .to_lower_hex_string()
    }

    /// A fresh random account key.
    pub fn random_key() -> AccountKey {
        let secret: [u8; 32] = rand::random();
        AccountKey::from_secret_key(
            bitcoin::secp256k1::SecretKey::from_slice(&secret).expect("a valid secret"),
        )
    }

    /// Asks for a deposit invoice (201).
    pub async fn deposit_invoice(
        client: &reqwest::Client,
        base: &str,
        network_id: &str,
        account: &str,
        amount_msat: u64,
    ) -> Value {
        let response = client
            .post(format!("{base}/accounts/deposits"))
            .json(&json!({ "network": network_id, "account": account, "amount": amount_msat.to_string() }))
            .send()
            .await
            .expect("the service answers");
        assert_eq!(response.status(), 201, "a deposit invoice");
        response.json().await.expect("JSON")
    }

    /// Pays an invoice of the service's simulated node (`POST /pay`); the status.
    pub async fn pay_simulated(client: &reqwest::Client, base: &str, invoice: &str) -> u16 {
        client
            .post(format!("{base}/pay"))
            .json(&json!({ "invoice": invoice }))
            .send()
            .await
            .expect("the service answers")
            .status()
            .as_u16()
    }

    /// Funds `key`'s account with `amount_msat` on `network_id`: a deposit invoice, paid
    /// through the simulated node, read until credited. Returns the deposit's payment hash.
    pub async fn fund(
        client: &reqwest::Client,
        base: &str,
        key: &AccountKey,
        network_id: &str,
        amount_msat: u64,
    ) -> String {
        let deposit = deposit_invoice(client, base, network_id, &key.account(), amount_msat).await;
        let invoice = deposit["invoice"].as_str().expect("an invoice");
        assert_eq!(pay_simulated(client, base, invoice).await, 200, "paid");
        let payment_hash = deposit["paymentHash"].as_str().expect("a hash").to_owned();
        let state: Value = client
            .get(format!("{base}/accounts/deposits/{payment_hash}"))
            .send()
            .await
            .expect("the service answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(state["state"], "credited", "{state}");
        payment_hash
    }

    /// Requirements for `amount_msat` on `network` (an x402 v1 name), described by text.
    pub async fn requirements(
        client: &reqwest::Client,
        base: &str,
        network: x402_lightning::Network,
        amount_msat: u64,
    ) -> PaymentRequirements {
        let mut request = RequirementsRequest::new(network, amount_msat, "http://127.0.0.1/paid");
        request.description = "a paid test resource".into();
        let response = client
            .post(format!("{base}/requirements"))
            .json(&request)
            .send()
            .await
            .expect("the service answers");
        assert_eq!(response.status(), 200, "requirements");
        response.json().await.expect("PaymentRequirements")
    }

    /// The `/verify` and `/settle` body paying `requirements` with `key`.
    pub fn payment_body(key: &AccountKey, requirements: &PaymentRequirements) -> Value {
        json!({
            "x402Version": 1,
            "paymentPayload": key.authorize(requirements).expect("a BOLT11 invoice"),
            "paymentRequirements": requirements,
        })
    }

    /// POSTs `body` to `path` (`/verify`, `/settle`); status and JSON.
    pub async fn post(
        client: &reqwest::Client,
        base: &str,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = client
            .post(format!("{base}{path}"))
            .json(body)
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A signed read of `key`'s account on `network_id`; status and JSON.
    pub async fn read_account(
        client: &reqwest::Client,
        base: &str,
        key: &AccountKey,
        network_id: &str,
    ) -> (u16, Value) {
        let response = client
            .get(format!("{base}/accounts/{network_id}/{}", key.account()))
            .header(
                "X402-Account-Signature",
                key.account_read_signature(network_id, unix_now()),
            )
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
