//! Crash tests of the seed flow's money (`PROTOCOL.md` Part 3, the withdrawals and deposits
//! rows): the service binary is SIGKILLed during a withdrawal and during settles, restarted on
//! the same database and the same node (the LND REST simulator of `tests/lnd_sim`, which lives
//! in the test process and so survives the service), and then nothing is paid twice, no credit
//! is lost, and a deposit is credited once however often it is read.
//!
//! Each scenario runs on a SQLite file and, when `X402_FACILITATOR_TEST_POSTGRES_URL` is set,
//! on PostgreSQL (a schema of its own); without it the PostgreSQL variants say they are skipped.
//!
//! The service resolves a withdrawal left pending by a crash in its bookkeeping loop (every
//! 5 s) once it is stale: unchanged for longer than the node timeout (1 s here, rounded up) +
//! 5 s. So a restarted service decides such a withdrawal within about 12 s; every wait here is
//! bounded by [`RESOLVE_WITHIN`].

mod common;
mod lnd_sim;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::v1::AccountKey;
use x402_lightning_facilitator::books::WithdrawalState;
use x402_lightning_facilitator::node::{
    InvoiceState, LightningNode as _, LndNode, PaymentRequest, PaymentStatus,
};
use x402_lightning_facilitator::store;

use common::seed::{payment_body, random_key, unix_now};
use common::{Instance, PgSchema, postgres_url, sqlite_url};
use lnd_sim::{Fault, LndFiles, LndSim, Outcome, hex, track_path};
use x402_lightning::types::{PaymentRequirements, RequirementsRequest};

/// The network every scenario runs on, as the requests write it.
const REGTEST: &str = "lightning-regtest";

/// `POST /v2/router/send`: `SendPaymentV2`, the only call that pays.
const SEND: &str = "/v2/router/send";

/// How long a restarted service may take to decide a withdrawal left pending (stale after
/// 1 s + 5 s, checked every 5 s), with room for a loaded machine.
const RESOLVE_WITHIN: Duration = Duration::from_secs(25);

/// How often a poll asks again.
const POLL: Duration = Duration::from_millis(150);

/// A scenario's world: the simulated LND node, the database, the credentials and logs.
struct World {
    sim: LndSim,
    files: LndFiles,
    dir: tempfile::TempDir,
    database: String,
    client: reqwest::Client,
}

impl World {
    async fn new(database: &str) -> World {
        let sim = LndSim::start(Network::Regtest).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = sim.write_credentials(dir.path());
        World {
            sim,
            files,
            dir,
            database: database.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client"),
        }
    }

    /// Starts a service process on the world's database and node: withdrawals answer 202 after
    /// 300 ms, node calls time out after 1 s (so a pending withdrawal is stale after 6 s).
    fn start(&self) -> Instance {
        let mut env: Vec<(&str, String)> = vec![
            ("X402_FACILITATOR_DATABASE_URL", self.database.clone()),
            ("X402_FACILITATOR_NETWORKS", REGTEST.to_owned()),
            ("X402_FACILITATOR_NODE_TIMEOUT_MS", "1000".to_owned()),
            ("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "300".to_owned()),
            // The node calls, for the log a failure prints.
            (
                "RUST_LOG",
                "info,x402_lightning_facilitator=debug".to_owned(),
            ),
        ];
        env.extend(self.sim.service_env(&self.files));
        let env: Vec<(&str, &str)> = env
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let dir: &Path = self.dir.path();
        // Blocks until the process listens; the simulator keeps answering on other threads.
        tokio::task::block_in_place(|| Instance::start(dir, &env))
    }

    /// Funds `key`'s account with `amount_msat`: a deposit invoice of the node, paid over
    /// Lightning (the simulator settles it), read until credited. Returns its payment hash.
    async fn fund(&self, service: &Instance, key: &AccountKey, amount_msat: u64) -> String {
        let deposit = self.deposit_invoice(service, key, amount_msat).await;
        let payment_hash = deposit["paymentHash"].as_str().expect("a hash").to_owned();
        self.sim
            .settle_invoice(&hash_bytes(&payment_hash))
            .expect("the deposit invoice is paid");
        let (status, state) = self.deposit_state(service, &payment_hash).await;
        assert_eq!(
            (status, &state["state"]),
            (200, &json!("credited")),
            "{state}"
        );
        payment_hash
    }

    async fn deposit_state(&self, service: &Instance, payment_hash: &str) -> (u16, Value) {
        let url = service.url(&format!("/accounts/deposits/{payment_hash}"));
        call(|| self.client.get(&url)).await
    }

    /// A deposit invoice for `key`'s account (201).
    async fn deposit_invoice(
        &self,
        service: &Instance,
        key: &AccountKey,
        amount_msat: u64,
    ) -> Value {
        let body = json!({ "network": REGTEST, "account": key.account(), "amount": amount_msat.to_string() });
        let url = service.url("/accounts/deposits");
        let (status, deposit) = call(|| self.client.post(&url).json(&body)).await;
        assert_eq!(status, 201, "a deposit invoice: {deposit}");
        deposit
    }

    /// `(balance, held, available)` of `key`'s account, by a signed read.
    async fn balances(&self, service: &Instance, key: &AccountKey) -> (u64, u64, u64) {
        let url = service.url(&format!("/accounts/{REGTEST}/{}", key.account()));
        let (status, account) = call(|| {
            self.client.get(&url).header(
                "X402-Account-Signature",
                key.account_read_signature(REGTEST, unix_now()),
            )
        })
        .await;
        assert_eq!(status, 200, "{account}");
        let field = |name: &str| -> u64 {
            account[name]
                .as_str()
                .and_then(|text| text.parse().ok())
                .unwrap_or_else(|| panic!("{name} is a msat string: {account}"))
        };
        (field("balance"), field("held"), field("available"))
    }

    /// `POST /accounts/withdrawals` paying `invoice` from `key`'s account.
    async fn withdraw(
        &self,
        service: &Instance,
        key: &AccountKey,
        invoice: &str,
        max_fee_msat: u64,
    ) -> (u16, Value) {
        let body = json!({
            "network": REGTEST,
            "account": key.account(),
            "invoice": invoice,
            "maxFeeMsat": max_fee_msat.to_string(),
            "signature": key.sign_withdrawal(invoice, max_fee_msat),
        });
        let url = service.url("/accounts/withdrawals");
        call(|| self.client.post(&url).json(&body)).await
    }

    /// The signed `GET` of a withdrawal.
    async fn withdrawal(
        &self,
        service: &Instance,
        key: &AccountKey,
        payment_hash: &str,
    ) -> (u16, Value) {
        let path = format!(
            "/accounts/{REGTEST}/{}/withdrawals/{payment_hash}",
            key.account()
        );
        let url = service.url(&path);
        call(|| {
            self.client.get(&url).header(
                "X402-Account-Signature",
                key.account_read_signature(REGTEST, unix_now()),
            )
        })
        .await
    }

    /// Reads the withdrawal until it is no longer pending, at most [`RESOLVE_WITHIN`].
    async fn await_decided(
        &self,
        service: &Instance,
        key: &AccountKey,
        payment_hash: &str,
    ) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let (status, read) = self.withdrawal(service, key, payment_hash).await;
            if read["state"] != "pending" {
                eprintln!(
                    "withdrawal {payment_hash} decided after the restart in {:?}",
                    started.elapsed()
                );
                return (status, read);
            }
            assert!(
                started.elapsed() < RESOLVE_WITHIN,
                "the restarted service left the withdrawal pending for {RESOLVE_WITHIN:?}: \
                 {read}\nsends: {}, tracks: {}\nlog:\n{}",
                self.sends(payment_hash),
                self.tracks(payment_hash),
                service.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// How many times the node was asked to pay the invoice of `payment_hash`.
    fn sends(&self, payment_hash: &str) -> usize {
        self.sim
            .requests_to(SEND)
            .iter()
            .filter(|request| {
                request.json()["payment_request"]
                    .as_str()
                    .and_then(|invoice| x402_lightning::lnbtc::invoice::decode(invoice).ok())
                    .is_some_and(|decoded| decoded.payment_hash_hex() == payment_hash)
            })
            .count()
    }

    /// How many times the node was asked to track the payment of `payment_hash`.
    fn tracks(&self, payment_hash: &str) -> usize {
        self.sim
            .requests_to(&track_path(&hash_bytes(payment_hash)))
            .len()
    }

    /// Opens the database as the service does and checks that every account agrees with its
    /// journal.
    async fn audit(&self) {
        let store = store::open(&self.database).await.expect("the store opens");
        let rows = store.audit().await.expect("audit");
        for row in &rows {
            assert!(
                row.adds_up(),
                "the books disagree with the journal: {row:?}"
            );
        }
        store.close().await;
    }

    /// The withdrawal as the books hold it, and every pending one.
    async fn books_withdrawal(
        &self,
        payment_hash: &str,
    ) -> (
        Option<x402_lightning_facilitator::books::WithdrawalRecord>,
        usize,
    ) {
        let store = store::open(&self.database).await.expect("the store opens");
        let record = store.withdrawal(payment_hash).await.expect("a read");
        let pending = store.pending_withdrawals().await.expect("a read").len();
        store.close().await;
        (record, pending)
    }
}

/// How long a request is sent again while the service answers 503: the store failed and
/// nothing was decided (the machine's PostgreSQL is shared by every suite running and may
/// refuse connections for a while: "too many clients").
const RETRY_503_FOR: Duration = Duration::from_secs(15);

/// Sends the request `build` makes; again while it is answered 503 (at most
/// [`RETRY_503_FOR`]). Status and JSON.
async fn call(build: impl Fn() -> reqwest::RequestBuilder) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let response = build().send().await.expect("the service answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        if status != 503 || started.elapsed() > RETRY_503_FOR {
            return (status, body);
        }
        eprintln!("503, sent again: {body}");
        tokio::time::sleep(POLL).await;
    }
}

/// The log's warnings and errors, for a failure's message.
fn trouble(service: &Instance) -> String {
    service
        .log_text()
        .lines()
        .filter(|line| line.contains(" ERROR ") || line.contains(" WARN "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// SIGKILLs the service (blocking for the reap only).
fn kill(service: Instance) {
    tokio::task::block_in_place(|| service.kill());
}

fn hash_bytes(payment_hash: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..payment_hash.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&payment_hash[i..i + 2], 16).expect("hex"))
        .collect();
    bytes.try_into().expect("32 bytes")
}

/// The simulator's routing fee for `amount_msat` (1 msat per 1000, rounded up).
fn fee(amount_msat: u64) -> u64 {
    lnd_sim::default_fee(amount_msat)
}

// ---------------------------------------------------------------------------------------------
// The scenarios, each on any database URL.
// ---------------------------------------------------------------------------------------------

const FUNDED: u64 = 50_000;
const AMOUNT: u64 = 10_000;
const MAX_FEE: u64 = 100;

/// A pending withdrawal whose payment the node decides while the service is down: after the
/// restart it ends as the node says (`succeed`), asked by tracking, never paid again.
async fn withdrawal_in_flight_at_a_crash(database: &str, succeed: bool) {
    let world = World::new(database).await;
    let key = random_key();
    let first = world.start();
    world.fund(&first, &key, FUNDED).await;
    let (invoice, hash, preimage) = world.sim.external_invoice(Network::Regtest, AMOUNT);
    let payment_hash = hex(&hash);
    world.sim.payment_outcome(hash, Outcome::Pending);

    let (status, pending) = world.withdraw(&first, &key, &invoice, MAX_FEE).await;
    assert_eq!(
        (status, &pending["state"]),
        (202, &json!("pending")),
        "{pending}"
    );
    assert_eq!(
        world.sends(&payment_hash),
        1,
        "the node was asked to pay once"
    );
    assert_eq!(
        world.balances(&first, &key).await,
        (FUNDED, AMOUNT + MAX_FEE, FUNDED - AMOUNT - MAX_FEE),
        "amount + maxFeeMsat held"
    );
    kill(first);

    // The node decides while the service is down.
    assert!(world.sim.resolve_payment(&hash, succeed), "in flight");
    let second = world.start();
    let (status, decided) = world.await_decided(&second, &key, &payment_hash).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        world.sends(&payment_hash),
        1,
        "a payment in flight at a crash is resolved by asking the node, never paid again"
    );
    assert!(
        world.tracks(&payment_hash) >= 1,
        "the restarted service asked the node"
    );
    if succeed {
        assert_eq!(decided["state"], "succeeded", "{decided}");
        assert_eq!(decided["feeMsat"], fee(AMOUNT).to_string(), "{decided}");
        assert_eq!(decided["preimage"], hex(&preimage), "{decided}");
        let debited = FUNDED - AMOUNT - fee(AMOUNT);
        assert_eq!(
            world.balances(&second, &key).await,
            (debited, 0, debited),
            "debited amount + fee once, the hold released"
        );
        // Paid: never again.
        let (status, again) = world.withdraw(&second, &key, &invoice, MAX_FEE).await;
        assert_eq!(status, 400, "{again}");
        assert_eq!(again["reason"], "duplicate_settlement", "{again}");
        assert_eq!(world.sends(&payment_hash), 1);
    } else {
        assert_eq!(decided["state"], "failed", "{decided}");
        assert!(decided["reason"].is_string(), "{decided}");
        assert_eq!(
            world.balances(&second, &key).await,
            (FUNDED, 0, FUNDED),
            "the balance as before, the hold released"
        );
        // A failed withdrawal's invoice may be tried again: paid once, debited once.
        let (status, paid) = world.withdraw(&second, &key, &invoice, MAX_FEE).await;
        assert_eq!(
            (status, &paid["state"]),
            (200, &json!("succeeded")),
            "{paid}"
        );
        assert_eq!(world.sends(&payment_hash), 2, "the second attempt");
        let debited = FUNDED - AMOUNT - fee(AMOUNT);
        assert_eq!(world.balances(&second, &key).await, (debited, 0, debited));
        assert!(matches!(
            world.sim.payment_status(&hash),
            Some(PaymentStatus::Succeeded { .. })
        ));
    }
    // Either way the invoice ends paid (the failed one by its second attempt).
    let (record, pending) = world.books_withdrawal(&payment_hash).await;
    assert_eq!(
        record.map(|record| record.state),
        Some(WithdrawalState::Succeeded)
    );
    assert_eq!(pending, 0, "no withdrawal left pending");
    kill(second);
    world.audit().await;
}

/// A crash between the books and the node: the withdrawal is recorded and held, its send
/// reached the node but the node never started the payment (the send hangs, unanswered), and
/// the service dies. After the restart the node is asked (track: "payment isn't initiated"),
/// the withdrawal fails with the balance as before and is never sent again by the service;
/// the client may then withdraw the invoice again.
async fn crash_between_the_books_and_the_node(database: &str) {
    let world = World::new(database).await;
    let key = random_key();
    let first = world.start();
    world.fund(&first, &key, FUNDED).await;
    let (invoice, hash, _) = world.sim.external_invoice(Network::Regtest, AMOUNT);
    let payment_hash = hex(&hash);
    // The send never answers and the first instance's tracker never hears back either: the
    // instance is killed with the withdrawal pending in the books.
    world.sim.fail(SEND, Fault::Hang);
    world.sim.fail(&track_path(&hash), Fault::Hang);
    let (status, pending) = world.withdraw(&first, &key, &invoice, MAX_FEE).await;
    assert_eq!(
        (status, &pending["state"]),
        (202, &json!("pending")),
        "{pending}"
    );
    kill(first);
    world.sim.clear_faults();
    assert_eq!(world.sends(&payment_hash), 1);
    assert_eq!(
        world.sim.payment_status(&hash),
        None,
        "the node never started it"
    );
    let tracks_before = world.tracks(&payment_hash);

    let second = world.start();
    let (status, decided) = world.await_decided(&second, &key, &payment_hash).await;
    assert_eq!(
        (status, &decided["state"]),
        (200, &json!("failed")),
        "{decided}"
    );
    assert_eq!(
        world.sends(&payment_hash),
        1,
        "resolved by asking, never sent again"
    );
    assert!(
        world.tracks(&payment_hash) > tracks_before,
        "the node was asked"
    );
    assert_eq!(world.balances(&second, &key).await, (FUNDED, 0, FUNDED));

    let (status, paid) = world.withdraw(&second, &key, &invoice, MAX_FEE).await;
    assert_eq!(
        (status, &paid["state"]),
        (200, &json!("succeeded")),
        "{paid}"
    );
    assert_eq!(world.sends(&payment_hash), 2);
    let debited = FUNDED - AMOUNT - fee(AMOUNT);
    assert_eq!(world.balances(&second, &key).await, (debited, 0, debited));
    kill(second);
    world.audit().await;
}

/// A payment still in flight after the restart stays pending (202 on its read, amount + fee
/// still held, a second withdrawal of the invoice 409) until the node decides it: then it
/// succeeds once.
async fn a_payment_still_pending_after_a_restart_stays_pending(database: &str) {
    let world = World::new(database).await;
    let key = random_key();
    let first = world.start();
    world.fund(&first, &key, FUNDED).await;
    let (invoice, hash, _) = world.sim.external_invoice(Network::Regtest, AMOUNT);
    let payment_hash = hex(&hash);
    world.sim.payment_outcome(hash, Outcome::Pending);
    let (status, pending) = world.withdraw(&first, &key, &invoice, MAX_FEE).await;
    assert_eq!(
        (status, &pending["state"]),
        (202, &json!("pending")),
        "{pending}"
    );
    kill(first);
    let tracks_before = world.tracks(&payment_hash);

    let second = world.start();
    // Wait until the restarted service has asked the node about it (once it is stale).
    let started = Instant::now();
    while world.tracks(&payment_hash) == tracks_before {
        assert!(
            started.elapsed() < RESOLVE_WITHIN,
            "the restarted service never asked the node about the pending withdrawal:\n{}",
            second.log_text()
        );
        tokio::time::sleep(POLL).await;
    }
    // Let that check end (a zero-wait track) before reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, read) = world.withdrawal(&second, &key, &payment_hash).await;
    assert_eq!((status, &read["state"]), (202, &json!("pending")), "{read}");
    assert_eq!(
        world.balances(&second, &key).await,
        (FUNDED, AMOUNT + MAX_FEE, FUNDED - AMOUNT - MAX_FEE),
        "amount + maxFeeMsat still held"
    );
    let (status, refused) = world.withdraw(&second, &key, &invoice, MAX_FEE).await;
    assert_eq!(status, 409, "in flight: {refused}");
    assert_eq!(world.sends(&payment_hash), 1);

    assert!(world.sim.resolve_payment(&hash, true));
    let (status, decided) = world.await_decided(&second, &key, &payment_hash).await;
    assert_eq!(
        (status, &decided["state"]),
        (200, &json!("succeeded")),
        "{decided}"
    );
    assert_eq!(world.sends(&payment_hash), 1, "never paid again");
    let debited = FUNDED - AMOUNT - fee(AMOUNT);
    assert_eq!(world.balances(&second, &key).await, (debited, 0, debited));
    kill(second);
    world.audit().await;
}

/// What a settle sent to a killed service got.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Success,
    Refused(String),
    /// No answer (the process died) or not a verdict.
    Lost(String),
}

/// `POST /settle`; sent again while answered 503 (nothing decided), as a client would.
async fn settle(client: &reqwest::Client, base: &str, body: &Value) -> Answer {
    let started = Instant::now();
    loop {
        let response = match client
            .post(format!("{base}/settle"))
            .json(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return Answer::Lost(err.to_string()),
        };
        let status = response.status().as_u16();
        let Ok(answer) = response.json::<Value>().await else {
            return Answer::Lost(format!("{status} without JSON"));
        };
        match (status, &answer["success"]) {
            (200, Value::Bool(true)) => return Answer::Success,
            (200, Value::Bool(false)) => {
                return Answer::Refused(
                    answer["errorReason"]
                        .as_str()
                        .unwrap_or("no reason")
                        .to_owned(),
                );
            }
            (503, _) if started.elapsed() < RETRY_503_FOR => {
                eprintln!("503, settle sent again: {answer}");
                tokio::time::sleep(POLL).await;
            }
            _ => return Answer::Lost(format!("{status} {answer}")),
        }
    }
}

/// 32 concurrent settles of different invoices on one account that can pay `FUNDABLE` of them;
/// the service is SIGKILLed after a quarter of the answers; after a restart every settle is
/// sent again. Exactly `FUNDABLE` invoices end paid, each once, the balance is debited for
/// exactly those, and the books add up.
async fn sigkill_during_settles(database: &str) {
    const SETTLES: usize = 32;
    const FUNDABLE: usize = 20;
    const PRICE: u64 = 10_000;
    let world = World::new(database).await;
    let key = random_key();
    let first = world.start();
    let base = first.url("");
    let funded = PRICE * FUNDABLE as u64;
    world.fund(&first, &key, funded).await;
    let mut bodies = Vec::new();
    let mut hashes = Vec::new();
    for index in 0..SETTLES {
        let mut asked = RequirementsRequest::new(Network::Regtest, PRICE, "http://127.0.0.1/paid");
        asked.description = "a paid test resource".into();
        let url = format!("{base}/requirements");
        let (status, required) = call(|| world.client.post(&url).json(&asked)).await;
        assert_eq!(status, 200, "requirements: {required}");
        let required: PaymentRequirements =
            serde_json::from_value(required).expect("PaymentRequirements");
        let invoice = required.extra.invoice.clone();
        let decoded = x402_lightning::lnbtc::invoice::decode(&invoice).expect("an invoice");
        hashes.push(decoded.payment_hash_hex());
        let body = payment_body(&key, &required);
        // A third are verified first: their holds are on the account at the crash.
        if index % 3 == 0 {
            let url = format!("{base}/verify");
            let (status, verified) = call(|| world.client.post(&url).json(&body)).await;
            assert_eq!(status, 200, "{verified}");
        }
        bodies.push(body);
    }

    let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (index, body) in bodies.iter().cloned().enumerate() {
        let client = world.client.clone();
        let base = base.clone();
        let answers = answers.clone();
        tasks.push(tokio::spawn(async move {
            let answer = settle(&client, &base, &body).await;
            let _ = answers.send((index, answer));
        }));
    }
    drop(answers);
    let mut first_run: Vec<Option<Answer>> = vec![None; SETTLES];
    let mut received = 0;
    let killed_at = Instant::now();
    while received < SETTLES / 4 {
        let (index, answer) = tokio::time::timeout(Duration::from_secs(30), answered.recv())
            .await
            .expect("answers within 30 s")
            .expect("a sender lives");
        first_run[index] = Some(answer);
        received += 1;
    }
    kill(first);
    eprintln!(
        "killed after {received} answers, {:?} after the first send",
        killed_at.elapsed()
    );
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("every settle ends once the process is dead")
            .expect("no panic");
    }
    while let Ok((index, answer)) = answered.try_recv() {
        first_run[index] = Some(answer);
    }
    let first_run: Vec<Answer> = first_run
        .into_iter()
        .map(|answer| answer.expect("every settle answered or failed"))
        .collect();
    let lost = first_run
        .iter()
        .filter(|answer| matches!(answer, Answer::Lost(_)))
        .count();
    eprintln!(
        "first run: {} successes, {} refusals, {lost} without an answer",
        first_run.iter().filter(|a| **a == Answer::Success).count(),
        first_run
            .iter()
            .filter(|a| matches!(a, Answer::Refused(_)))
            .count(),
    );
    for answer in &first_run {
        if let Answer::Refused(reason) = answer {
            assert_eq!(reason, "insufficient_funds", "{first_run:?}");
        }
    }

    let cancelled = hashes
        .iter()
        .filter(|hash| world.sim.invoice_state(&hash_bytes(hash)) == Some(InvoiceState::Canceled))
        .count();
    eprintln!("invoices cancelled at the node before the crash: {cancelled}");

    let second = world.start();
    let base = second.url("");
    let mut second_run = Vec::new();
    for body in &bodies {
        second_run.push(settle(&world.client, &base, body).await);
    }
    let mut paid = HashSet::new();
    for (index, (before, after)) in first_run.iter().zip(&second_run).enumerate() {
        match after {
            Answer::Success => {
                assert_ne!(
                    *before,
                    Answer::Success,
                    "invoice {index} settled successfully twice"
                );
                paid.insert(index);
            }
            Answer::Refused(reason) if reason == "duplicate_settlement" => {
                paid.insert(index);
            }
            Answer::Refused(reason) if reason == "insufficient_funds" => {
                assert_ne!(
                    *before,
                    Answer::Success,
                    "invoice {index}: its success was forgotten"
                );
            }
            other => panic!("invoice {index} again after the restart: {other:?}"),
        }
        if *before == Answer::Success {
            assert_eq!(
                *after,
                Answer::Refused("duplicate_settlement".into()),
                "invoice {index}: a success before the crash is a duplicate after it"
            );
        }
    }
    let unanswered = first_run
        .iter()
        .zip(&second_run)
        .filter(|(before, after)| {
            matches!(before, Answer::Lost(_))
                && **after == Answer::Refused("duplicate_settlement".into())
        })
        .count();
    eprintln!("paid in the books before the crash but never answered: {unanswered}");
    let successes = first_run
        .iter()
        .chain(&second_run)
        .filter(|answer| **answer == Answer::Success)
        .count();
    assert!(
        successes <= FUNDABLE,
        "{successes} successes for {FUNDABLE} fundable"
    );
    assert_eq!(
        paid.len(),
        FUNDABLE,
        "every fundable settle paid once all were sent again: {second_run:?}"
    );
    let (balance, held, available) = world.balances(&second, &key).await;
    assert_eq!(
        funded - balance,
        paid.len() as u64 * PRICE,
        "debited for the paid invoices exactly"
    );
    assert_eq!((held, available), (0, balance), "no hold left behind");

    // Every invoice paid at most once: a third round pays nothing, and none was paid over
    // Lightning besides.
    for (index, body) in bodies.iter().enumerate() {
        let answer = settle(&world.client, &base, body).await;
        let expected = if paid.contains(&index) {
            "duplicate_settlement"
        } else {
            "insufficient_funds"
        };
        assert_eq!(answer, Answer::Refused(expected.into()), "invoice {index}");
    }
    for hash in &hashes {
        assert_ne!(
            world.sim.invoice_state(&hash_bytes(hash)),
            Some(InvoiceState::Settled)
        );
    }
    assert_eq!(world.balances(&second, &key).await, (balance, 0, balance));
    kill(second);
    world.audit().await;
}

/// A deposit paid while nothing reads it, the service killed, restarted and read 20 times one
/// after the other and 20 times at once (the deposit and the account), and again after a
/// restart right after a read: credited once. An unpaid deposit stays pending throughout.
async fn deposits_are_credited_once_however_often_they_are_read(database: &str) {
    const DEPOSIT: u64 = 30_000;
    let world = World::new(database).await;
    let key = random_key();
    let first = world.start();
    let deposit = world.deposit_invoice(&first, &key, DEPOSIT).await;
    let payment_hash = deposit["paymentHash"].as_str().expect("a hash").to_owned();
    let unpaid = world.deposit_invoice(&first, &key, 7_000).await;
    let unpaid_hash = unpaid["paymentHash"].as_str().expect("a hash").to_owned();
    world
        .sim
        .settle_invoice(&hash_bytes(&payment_hash))
        .expect("paid over Lightning");
    kill(first);

    let second = world.start();
    let reads = 20;
    for _ in 0..reads {
        let (status, state) = world.deposit_state(&second, &payment_hash).await;
        assert_eq!(
            (status, &state["state"]),
            (200, &json!("credited")),
            "{state}\n{}",
            trouble(&second)
        );
        assert_eq!(
            world.balances(&second, &key).await,
            (DEPOSIT, 0, DEPOSIT),
            "credited once"
        );
    }
    let mut concurrent = Vec::new();
    for _ in 0..reads {
        concurrent.push(world.deposit_state(&second, &payment_hash));
    }
    for (status, state) in futures_join_all(concurrent).await {
        assert_eq!(
            (status, &state["state"]),
            (200, &json!("credited")),
            "{state}\n{}",
            trouble(&second)
        );
    }
    let mut accounts = Vec::new();
    for _ in 0..reads {
        accounts.push(world.balances(&second, &key));
    }
    for balances in futures_join_all(accounts).await {
        assert_eq!(balances, (DEPOSIT, 0, DEPOSIT), "credited once");
    }
    let (_, state) = world.deposit_state(&second, &unpaid_hash).await;
    assert_eq!(state["state"], "pending", "{state}");
    // Killed right after a read.
    assert_eq!(world.balances(&second, &key).await, (DEPOSIT, 0, DEPOSIT));
    kill(second);

    let third = world.start();
    assert_eq!(world.balances(&third, &key).await, (DEPOSIT, 0, DEPOSIT));
    let (_, state) = world.deposit_state(&third, &payment_hash).await;
    assert_eq!(state["state"], "credited", "{state}");
    // Reads racing a deposit's payment: paid now, read by 20 at once.
    world
        .sim
        .settle_invoice(&hash_bytes(&unpaid_hash))
        .expect("paid over Lightning");
    let mut racing = Vec::new();
    for _ in 0..reads {
        racing.push(world.deposit_state(&third, &unpaid_hash));
    }
    for (status, state) in futures_join_all(racing).await {
        assert_eq!(
            (status, &state["state"]),
            (200, &json!("credited")),
            "{state}\n{}",
            trouble(&third)
        );
    }
    let total = DEPOSIT + 7_000;
    assert_eq!(world.balances(&third, &key).await, (total, 0, total));
    kill(third);
    let fourth = world.start();
    assert_eq!(world.balances(&fourth, &key).await, (total, 0, total));
    kill(fourth);
    world.audit().await;
}

/// Awaits every future, concurrently (tokio has no `join_all`; these borrow the world, so no
/// tasks).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in futures.iter_mut().enumerate() {
            if outputs[index].is_some() {
                continue;
            }
            match future.as_mut().poll(cx) {
                std::task::Poll::Ready(output) => outputs[index] = Some(output),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("ready"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests: each scenario on SQLite, and on PostgreSQL when the machine has one.
// ---------------------------------------------------------------------------------------------

/// Runs `scenario` in a fresh PostgreSQL schema, or says it is skipped; the schema is dropped
/// whether the scenario passes or fails.
macro_rules! on_postgres {
    ($test:literal, |$url:ident| $scenario:expr) => {{
        let Some(base) = postgres_url($test) else {
            return;
        };
        let schema = PgSchema::create(&base).await;
        let owned = schema.url.clone();
        let outcome = tokio::spawn(async move {
            let $url = owned.as_str();
            $scenario.await;
        })
        .await;
        schema.drop_all().await;
        if let Err(failed) = outcome {
            std::panic::resume_unwind(failed.into_panic());
        }
    }};
}

fn sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = sqlite_url(dir.path());
    (dir, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_withdrawal_in_flight_at_a_crash_that_succeeds_meanwhile_is_debited_once() {
    let (_dir, url) = sqlite();
    withdrawal_in_flight_at_a_crash(&url, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_withdrawal_in_flight_at_a_crash_that_succeeds_meanwhile_is_debited_once() {
    on_postgres!("postgres_withdrawal_succeeds_meanwhile", |url| {
        withdrawal_in_flight_at_a_crash(url, true)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_withdrawal_in_flight_at_a_crash_that_fails_meanwhile_is_released_and_retryable() {
    let (_dir, url) = sqlite();
    withdrawal_in_flight_at_a_crash(&url, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_withdrawal_in_flight_at_a_crash_that_fails_meanwhile_is_released_and_retryable()
{
    on_postgres!("postgres_withdrawal_fails_meanwhile", |url| {
        withdrawal_in_flight_at_a_crash(url, false)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_crash_between_the_books_and_the_node_is_resolved_by_asking_never_by_sending() {
    let (_dir, url) = sqlite();
    crash_between_the_books_and_the_node(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_crash_between_the_books_and_the_node_is_resolved_by_asking_never_by_sending() {
    on_postgres!("postgres_crash_between_books_and_node", |url| {
        crash_between_the_books_and_the_node(url)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_payment_still_pending_after_a_restart_stays_pending_then_succeeds_once() {
    let (_dir, url) = sqlite();
    a_payment_still_pending_after_a_restart_stays_pending(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_sigkill_during_settles_pays_each_invoice_at_most_once_and_loses_no_credit() {
    let (_dir, url) = sqlite();
    sigkill_during_settles(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sigkill_during_settles_pays_each_invoice_at_most_once_and_loses_no_credit() {
    on_postgres!("postgres_sigkill_during_settles", |url| {
        sigkill_during_settles(url)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_deposits_are_credited_once_however_often_they_are_read_across_restarts() {
    let (_dir, url) = sqlite();
    deposits_are_credited_once_however_often_they_are_read(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_deposits_are_credited_once_however_often_they_are_read_across_restarts() {
    on_postgres!("postgres_deposits_credited_once", |url| {
        deposits_are_credited_once_however_often_they_are_read(url)
    });
}

/// The question a restarted service asks about a withdrawal left pending by a crash
/// (`keep_books_forever` → `accounts::resolve(…, Duration::ZERO)` → `track_payment(hash,
/// Duration::ZERO)`) must reach the node and get its answer: for a decided payment LND answers
/// at once. The crash scenarios above fail when it does not.
#[tokio::test(flavor = "multi_thread")]
async fn the_restart_question_a_zero_wait_track_gets_the_node_s_answer() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = LndNode::new(sim.config()).expect("a valid config");
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, AMOUNT);
    let paid = node
        .send_payment(
            PaymentRequest {
                invoice: &invoice,
                max_fee_msat: MAX_FEE,
                timeout_secs: 60,
            },
            Duration::from_secs(5),
        )
        .await
        .expect("paid");
    let decided = PaymentStatus::Succeeded {
        preimage,
        fee_msat: fee(AMOUNT),
    };
    assert_eq!(paid, decided);
    // Restarted services: each a fresh client, no connection to the node yet. (The answer
    // races a timer of about a millisecond: ask ten times.)
    let mut answers = Vec::new();
    for _ in 0..10 {
        let restarted = LndNode::new(sim.config()).expect("a valid config");
        let tracked = restarted
            .track_payment(&hash, Duration::ZERO)
            .await
            .expect("tracked");
        answers.push(tracked);
    }
    let in_flight = answers
        .iter()
        .filter(|answer| **answer == Some(PaymentStatus::InFlight))
        .count();
    assert_eq!(
        in_flight, 0,
        "a zero-wait track reported a SUCCEEDED payment in flight {in_flight} times of 10: \
         its timeout expires before the request reaches the node"
    );
    assert!(
        answers
            .iter()
            .all(|answer| *answer == Some(decided.clone()))
    );
    let restarted = LndNode::new(sim.config()).expect("a valid config");
    // With a wait, the node's answer.
    let tracked = restarted
        .track_payment(&hash, Duration::from_secs(1))
        .await
        .expect("tracked");
    assert_eq!(tracked, Some(decided));
}
