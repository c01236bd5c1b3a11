//! The money under concurrency (`PROTOCOL.md` Part 3), over HTTP against the running service
//! binary: one authorization raced by 32 settles (and one invoice by 8 payers), an account
//! funded for k of n payments, holds placed by concurrent verifies (and by other accounts'
//! verifies racing the settle), deposits read 32 times at once, one invoice withdrawn by 8
//! requests at once (pending, then failing and retried), and settles, withdrawals and a deposit
//! on one balance at once. On SQLite (one instance) and on PostgreSQL (two instances sharing one
//! schema and one node key; one instance where the simulated node's memory must be shared).
//! After each race the test opens the same database and checks that the journal adds up to
//! every balance (`Books::audit`) and that the balances are what the successes imply.
//!
//! The simulated node keeps its invoices in the memory of its process: an invoice minted by one
//! instance is unknown to the other one's node, so a v1 settle (which looks the invoice up and
//! cancels it) can only succeed on the instance that minted it; the other instance answers
//! `invalid_exact_lightning_invoice_unknown` until the winner has committed, and
//! `duplicate_settlement` after. The two-instance tests accept exactly that, and race what two
//! instances really share: the database (one account's row, the replay key, the holds).
//!
//! The PostgreSQL tests need `X402_FACILITATOR_TEST_POSTGRES_URL`; without it they say they are
//! skipped. They run one at a time (see [`POSTGRES`]).

mod common;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::hex::DisplayHex as _;
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::types::PaymentRequirements;
use x402_lightning::v1::AccountKey;
use x402_lightning::v1::reason;
use x402_lightning_facilitator::books::AuditRow;

use self::common::seed::{
    deposit_invoice, fund, pay_simulated, payment_body, post, random_key, read_account,
    requirements, unix_now,
};
use self::common::{Instance, PgSchema, postgres_url, sqlite_url};

/// The network of every account here, as the requests write it.
const NETWORK_ID: &str = "lightning-regtest";

/// The price of one request, msat.
const PRICE: u64 = 1_000;

/// How many clients race.
const CLIENTS: usize = 32;

// ---------------------------------------------------------------------------------------------
// Instances, clients and the audit.

/// A fresh simulated node key (64 hex): instances sharing a store must share it.
fn node_key() -> String {
    rand::random::<[u8; 32]>().to_lower_hex_string()
}

/// One instance on `database` with the simulated node `key`; withdrawals answer 202 after
/// 500 ms.
fn start(dir: &std::path::Path, database: &str, key: &str) -> Instance {
    Instance::start(
        dir,
        &[
            ("X402_FACILITATOR_DATABASE_URL", database),
            ("X402_FACILITATOR_NODE_KEY", key),
            ("X402_FACILITATOR_WITHDRAWAL_WAIT_MS", "500"),
        ],
    )
}

/// Two instances on `database`, one node key, started at once (the migrations take
/// PostgreSQL's advisory lock).
fn start_two(dir: &std::path::Path, database: &str) -> (Instance, Instance) {
    let key = node_key();
    std::thread::scope(|scope| {
        let a = scope.spawn(|| start(dir, database, &key));
        let b = scope.spawn(|| start(dir, database, &key));
        (a.join().expect("a starts"), b.join().expect("b starts"))
    })
}

/// The PostgreSQL tests run one at a time: two instances hold up to 32 connections (16 each)
/// and the machine's server allows 100 in all (beyond them, every store call is a 503).
static POSTGRES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// A fresh schema in the machine's PostgreSQL and this test's turn on it; `None` (the test
/// says it is skipped) without `X402_FACILITATOR_TEST_POSTGRES_URL`.
async fn postgres(test: &str) -> Option<(tokio::sync::SemaphorePermit<'static>, PgSchema)> {
    let base = postgres_url(test)?;
    let turn = POSTGRES.acquire().await.expect("never closed");
    Some((turn, PgSchema::create(&base).await))
}

/// A client whose every request ends within a minute.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a client")
}

/// Opens the service's database as the service does and checks the books: every account's
/// row equals its journal's sums, and each `expected` account has this balance and held
/// amount.
async fn audit(database: &str, expected: &[(&AccountKey, u64, u64)]) -> Vec<AuditRow> {
    let store = x402_lightning_facilitator::store::open(database)
        .await
        .expect("the books open");
    let rows = store.audit().await.expect("the audit runs");
    store.close().await;
    for row in &rows {
        assert!(
            row.adds_up(),
            "the journal adds up to every balance: {row:?}"
        );
    }
    for (key, balance, held) in expected {
        let account = key.account();
        let row = rows
            .iter()
            .find(|row| row.account.network == Network::Regtest && row.account.account == account)
            .unwrap_or_else(|| panic!("the account {account} is in the books: {rows:?}"));
        assert_eq!(
            row.balance.balance_msat, *balance,
            "the balance the successes imply: {row:?}"
        );
        assert_eq!(
            row.balance.held_msat, *held,
            "the held amount the holds imply: {row:?}"
        );
    }
    rows
}

/// The account as the service reads it (signed): balance, held, available, msat.
async fn balance_of(
    client: &reqwest::Client,
    service: &Instance,
    key: &AccountKey,
) -> (u64, u64, u64) {
    let (status, account) = read_account(client, &service.url(""), key, NETWORK_ID).await;
    assert_eq!(status, 200, "a signed read of a funded account: {account}");
    (
        msat(&account["balance"]),
        msat(&account["held"]),
        msat(&account["available"]),
    )
}

/// An msat string of an answer (never negative: a `u64`).
fn msat(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("an msat string, never negative: {value}"))
}

// ---------------------------------------------------------------------------------------------
// Racing requests.

/// One request of a race.
#[derive(Clone, Debug)]
enum Call {
    /// POST `url` with a JSON body.
    Post { url: String, body: Value },
    /// GET `url`, with an `X402-Account-Signature` when given.
    Get {
        url: String,
        signature: Option<String>,
    },
}

impl Call {
    fn post(service: &Instance, path: &str, body: &Value) -> Self {
        Self::Post {
            url: service.url(path),
            body: body.clone(),
        }
    }

    fn get(service: &Instance, path: &str) -> Self {
        Self::Get {
            url: service.url(path),
            signature: None,
        }
    }

    /// A signed read of `key`'s account.
    fn read(service: &Instance, key: &AccountKey) -> Self {
        Self::Get {
            url: service.url(&format!("/accounts/{NETWORK_ID}/{}", key.account())),
            signature: Some(key.account_read_signature(NETWORK_ID, unix_now())),
        }
    }
}

/// An answer: status and JSON body (`null` when not JSON).
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: Value,
}

/// Sends `calls` through `clients` concurrent clients, released together; each takes the next
/// call as soon as its previous one is answered. The answers, in the order of `calls`.
async fn race(client: &reqwest::Client, calls: Vec<Call>, clients: usize) -> Vec<Answer> {
    let total = calls.len();
    let queue = Arc::new(Mutex::new(
        calls.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let workers = clients.min(total).max(1);
    let start = Arc::new(tokio::sync::Barrier::new(workers));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let queue = queue.clone();
        let start = start.clone();
        let client = client.clone();
        tasks.spawn(async move {
            start.wait().await;
            let mut answers = Vec::new();
            loop {
                let next = queue.lock().expect("the queue").pop_front();
                let Some((index, call)) = next else {
                    return answers;
                };
                let request = match &call {
                    Call::Post { url, body } => client.post(url).json(body),
                    Call::Get { url, signature } => {
                        let request = client.get(url);
                        match signature {
                            Some(signature) => {
                                request.header("X402-Account-Signature", signature.as_str())
                            }
                            None => request,
                        }
                    }
                };
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|err| panic!("the service answers {call:?}: {err}"));
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                answers.push((index, Answer { status, body }));
            }
        });
    }
    let mut answers: Vec<Option<Answer>> = vec![None; total];
    let deadline = Duration::from_secs(180);
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            for (index, answer) in joined.expect("a client task") {
                answers[index] = Some(answer);
            }
        }
    };
    tokio::time::timeout(deadline, collect)
        .await
        .expect("the race ends within 3 minutes");
    answers
        .into_iter()
        .map(|answer| answer.expect("every call answered"))
        .collect()
}

/// The `errorReason` of a settle answer (`invalidReason` of a verify answer).
fn reason_of(answer: &Answer) -> &str {
    answer.body["errorReason"]
        .as_str()
        .or_else(|| answer.body["invalidReason"].as_str())
        .unwrap_or("none")
}

/// An invoice handed out by one instance, and the authorization paying it.
struct Authorized {
    /// The index of the instance that minted it (only its node knows the invoice).
    minter: usize,
    requirements: PaymentRequirements,
    payment_hash: String,
    body: Value,
}

/// Requirements for [`PRICE`] from `instances[minter]`, authorized by `key`.
async fn authorize(
    client: &reqwest::Client,
    instances: &[&Instance],
    minter: usize,
    key: &AccountKey,
) -> Authorized {
    let requirements =
        requirements(client, &instances[minter].url(""), Network::Regtest, PRICE).await;
    let payment_hash = x402_lightning::lnbtc::invoice::decode(&requirements.extra.invoice)
        .expect("a BOLT11 invoice")
        .payment_hash_hex();
    let body = payment_body(key, &requirements);
    Authorized {
        minter,
        requirements,
        payment_hash,
        body,
    }
}

/// Tallies the settles of one invoice minted by `minter`: how many succeeded, were
/// `duplicate_settlement`, or were `invoice_unknown` (only on another instance, whose simulated
/// node never minted the invoice). Panics on anything else.
#[derive(Debug, Default)]
struct Tally {
    successes: usize,
    duplicates: usize,
    unknown_elsewhere: usize,
}

impl Tally {
    fn add(&mut self, answer: &Answer, on: usize, invoice: &Authorized) {
        assert_eq!(answer.status, 200, "a settle verdict: {answer:?}");
        if answer.body["success"] == true {
            assert_eq!(
                on, invoice.minter,
                "only the minting instance's node can pay: {answer:?}"
            );
            assert_eq!(answer.body["transaction"], invoice.payment_hash.as_str());
            self.successes += 1;
            return;
        }
        match reason_of(answer) {
            reason::DUPLICATE_SETTLEMENT => self.duplicates += 1,
            reason::INVOICE_UNKNOWN if on != invoice.minter => self.unknown_elsewhere += 1,
            other => {
                panic!("a loser of the race is a duplicate settlement, not {other}: {answer:?}")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. One authorization, 32 settles.

/// Rounds of 32 concurrent settles of one authorization (one with a hold from `/verify`, one
/// without), spread over `instances`, each invoice minted by the first: one success, the rest
/// duplicates; the account debited once per invoice.
async fn one_authorization_raced(instances: &[&Instance], database: &str) {
    let client = client();
    let minter = instances[0];
    let key = random_key();
    let funded = 10 * PRICE;
    fund(&client, &minter.url(""), &key, NETWORK_ID, funded).await;
    let mut debited = 0;
    for verified_first in [true, false] {
        let invoice = authorize(&client, instances, 0, &key).await;
        if verified_first {
            let (status, verified) = post(&client, &minter.url(""), "/verify", &invoice.body).await;
            assert_eq!(status, 200);
            assert_eq!(verified["isValid"], true, "{verified}");
            assert_eq!(balance_of(&client, minter, &key).await.1, PRICE, "held");
        }
        let calls = (0..32)
            .map(|i| Call::post(instances[i % instances.len()], "/settle", &invoice.body))
            .collect();
        let answers = race(&client, calls, CLIENTS).await;
        let mut tally = Tally::default();
        for (i, answer) in answers.iter().enumerate() {
            tally.add(answer, i % instances.len(), &invoice);
        }
        eprintln!("one authorization, verified first: {verified_first}: {tally:?}");
        assert_eq!(
            tally.successes, 1,
            "exactly one settle succeeds: {answers:?}"
        );
        if instances.len() == 1 {
            assert_eq!(tally.duplicates, 31, "{answers:?}");
        }
        debited += PRICE;
        assert_eq!(
            balance_of(&client, minter, &key).await,
            (funded - debited, 0, funded - debited),
            "debited once, the hold consumed"
        );
        audit(database, &[(&key, funded - debited, 0)]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_authorization_settled_32_times_at_once_is_debited_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    one_authorization_raced(&[&service], &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_authorization_settled_32_times_over_two_postgres_instances_is_debited_once() {
    let test = "one_authorization_settled_32_times_over_two_postgres_instances_is_debited_once";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    // Half the settles on each instance, the invoice minted by `a`.
    one_authorization_raced(&[&a, &b], &schema.url).await;

    // What two instances really share: invoices minted on both, every one raced on both at
    // once by one account (its row locked from both sides), 16 settles each.
    let client = client();
    let key = random_key();
    let funded = 10 * PRICE;
    fund(&client, &a.url(""), &key, NETWORK_ID, funded).await;
    let instances = [&a, &b];
    let mut invoices = Vec::new();
    for minter in [0, 1, 0, 1] {
        invoices.push(authorize(&client, &instances, minter, &key).await);
    }
    let mut calls = Vec::new();
    let mut plan = Vec::new();
    for i in 0..16 {
        for (which, invoice) in invoices.iter().enumerate() {
            let on = (i + which) % 2;
            calls.push(Call::post(instances[on], "/settle", &invoice.body));
            plan.push((which, on));
        }
    }
    let answers = race(&client, calls, CLIENTS).await;
    let mut tallies: Vec<Tally> = invoices.iter().map(|_| Tally::default()).collect();
    for (answer, (which, on)) in answers.iter().zip(&plan) {
        tallies[*which].add(answer, *on, &invoices[*which]);
    }
    eprintln!("four invoices raced over two instances: {tallies:?}");
    for (tally, invoice) in tallies.iter().zip(&invoices) {
        assert_eq!(
            tally.successes, 1,
            "exactly one settle of {} succeeds: {tallies:?}",
            invoice.payment_hash
        );
    }
    let left = funded - 4 * PRICE;
    assert_eq!(balance_of(&client, &b, &key).await, (left, 0, left));
    audit(&schema.url, &[(&key, left, 0)]).await;
    drop((a, b));
    schema.drop_all().await;
}

/// Invoices each authorized by 8 funded accounts, 4 settles per account at once, all on the
/// instance that minted the invoice (the instances take turns): the replay key, not an
/// account's row, decides; one account is debited per invoice, once.
async fn one_invoice_many_payers(instances: &[&Instance], database: &str) {
    const ROUNDS: usize = 4;
    let client = client();
    let keys: Vec<AccountKey> = (0..8).map(|_| random_key()).collect();
    let funded = ROUNDS as u64 * PRICE;
    for key in &keys {
        fund(&client, &instances[0].url(""), key, NETWORK_ID, funded).await;
    }
    let mut wins = vec![0; keys.len()];
    for round in 0..ROUNDS {
        let minter = round % instances.len();
        let invoice = authorize(&client, instances, minter, &keys[0]).await;
        let bodies: Vec<Value> = keys
            .iter()
            .map(|key| payment_body(key, &invoice.requirements))
            .collect();
        let calls = (0..32)
            .map(|i| Call::post(instances[minter], "/settle", &bodies[i % keys.len()]))
            .collect();
        let answers = race(&client, calls, CLIENTS).await;
        let mut tally = Tally::default();
        for (i, answer) in answers.iter().enumerate() {
            tally.add(answer, minter, &invoice);
            if answer.body["success"] == true {
                assert_eq!(answer.body["payer"], keys[i % keys.len()].account());
                wins[i % keys.len()] += 1;
            }
        }
        eprintln!("one invoice, eight payers: {tally:?}");
        assert_eq!(
            tally.successes, 1,
            "one payment of the invoice: {answers:?}"
        );
        assert_eq!(tally.duplicates, 31, "{answers:?}");
    }
    let expected: Vec<(&AccountKey, u64, u64)> = keys
        .iter()
        .zip(&wins)
        .map(|(key, won)| (key, funded - won * PRICE, 0))
        .collect();
    audit(database, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_invoice_authorized_by_eight_accounts_is_paid_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    one_invoice_many_payers(&[&service], &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_invoice_authorized_by_eight_accounts_is_paid_once_on_postgres() {
    let test = "one_invoice_authorized_by_eight_accounts_is_paid_once_on_postgres";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    one_invoice_many_payers(&[&a, &b], &schema.url).await;
    drop((a, b));
    schema.drop_all().await;
}

/// A hold that outlived the settle of its invoice: the round, the payment hash, the account.
type Leak = (usize, String, AuditRow);

fn assert_no_leak(leaks: &[Leak]) {
    assert!(
        leaks.is_empty(),
        "a hold of another account outlived the settle of its invoice (until the invoice's \
         expiry): {leaks:#?}"
    );
}

/// Rounds of one invoice settled by one account (8 settles) while 12 other accounts verify it
/// (24 verifies), at once: the invoice is paid once, and once paid no other account keeps a
/// hold on it (a hold lasts until the settle of its payment hash: `release_all` after the
/// payment, or `AlreadyPaid` for a verify that comes after it).
async fn verifies_racing_a_settle(instances: &[&Instance], database: &str) -> Vec<Leak> {
    const ROUNDS: usize = 10;
    let client = client();
    let payer = random_key();
    let others: Vec<AccountKey> = (0..12).map(|_| random_key()).collect();
    let funded = ROUNDS as u64 * PRICE;
    fund(&client, &instances[0].url(""), &payer, NETWORK_ID, funded).await;
    for key in &others {
        fund(&client, &instances[0].url(""), key, NETWORK_ID, PRICE).await;
    }
    let mut leaks = Vec::new();
    for round in 0..ROUNDS {
        let minter = round % instances.len();
        let invoice = authorize(&client, instances, minter, &payer).await;
        let mut calls = Vec::new();
        for i in 0..32 {
            if i % 4 == 0 {
                calls.push(Call::post(instances[minter], "/settle", &invoice.body));
            } else {
                let key = &others[i % others.len()];
                let body = payment_body(key, &invoice.requirements);
                calls.push(Call::post(instances[i % instances.len()], "/verify", &body));
            }
        }
        let answers = race(&client, calls, CLIENTS).await;
        let mut tally = Tally::default();
        for (i, answer) in answers.iter().enumerate() {
            if i % 4 == 0 {
                tally.add(answer, minter, &invoice);
            } else {
                assert_eq!(answer.status, 200, "a verify verdict: {answer:?}");
                assert!(
                    answer.body["isValid"] == true
                        || reason_of(answer) == reason::DUPLICATE_SETTLEMENT,
                    "{answer:?}"
                );
            }
        }
        assert_eq!(tally.successes, 1, "{answers:?}");
        let rows = audit(
            database,
            &[(&payer, funded - (round as u64 + 1) * PRICE, 0)],
        )
        .await;
        for key in &others {
            let account = key.account();
            let row = rows
                .iter()
                .find(|row| row.account.account == account)
                .expect("funded");
            assert_eq!(row.balance.balance_msat, PRICE, "{row:?}");
            if row.balance.held_msat != 0 {
                leaks.push((round, invoice.payment_hash.clone(), row.clone()));
                // Let the next round start clean: a settle of it refused releases the hold.
                let body = payment_body(key, &invoice.requirements);
                let (_, refused) =
                    post(&client, &instances[minter].url(""), "/settle", &body).await;
                assert_eq!(
                    refused["errorReason"],
                    reason::DUPLICATE_SETTLEMENT,
                    "{refused}"
                );
            }
        }
    }
    leaks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifies_by_other_accounts_racing_a_settle_leave_no_hold_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    assert_no_leak(&verifies_racing_a_settle(&[&service], &database).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifies_by_other_accounts_racing_a_settle_leave_no_hold_over_two_postgres_instances() {
    let test =
        "verifies_by_other_accounts_racing_a_settle_leave_no_hold_over_two_postgres_instances";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    let leaks = verifies_racing_a_settle(&[&a, &b], &schema.url).await;
    drop((a, b));
    schema.drop_all().await;
    assert_no_leak(&leaks);
}

// ---------------------------------------------------------------------------------------------
// 2. k of n.

/// An account funded for exactly `K` payments settles `N` invoices at once (minted round-robin
/// on `instances`, each settled where it was minted), with signed reads in the race: `K`
/// successes, the rest `insufficient_funds`, never a negative balance, 0 left.
async fn k_of_n(instances: &[&Instance], database: &str) {
    const N: usize = 40;
    const K: usize = 13;
    let client = client();
    let key = random_key();
    let funded = K as u64 * PRICE;
    fund(&client, &instances[0].url(""), &key, NETWORK_ID, funded).await;
    let mut invoices = Vec::new();
    for i in 0..N {
        invoices.push(authorize(&client, instances, i % instances.len(), &key).await);
    }
    let mut calls = Vec::new();
    for (i, invoice) in invoices.iter().enumerate() {
        calls.push(Call::post(
            instances[invoice.minter],
            "/settle",
            &invoice.body,
        ));
        if i % 5 == 0 {
            calls.push(Call::read(instances[i % instances.len()], &key));
        }
    }
    let answers = race(&client, calls, CLIENTS).await;
    let mut paid = HashSet::new();
    let mut short = 0;
    let mut reads = 0;
    for answer in &answers {
        if answer.body.get("balance").is_some() {
            assert_eq!(answer.status, 200, "{answer:?}");
            let (balance, held, available) = (
                msat(&answer.body["balance"]),
                msat(&answer.body["held"]),
                msat(&answer.body["available"]),
            );
            assert!(balance <= funded, "{answer:?}");
            assert_eq!(available, balance - held, "{answer:?}");
            assert_eq!(balance % PRICE, 0, "whole payments only: {answer:?}");
            reads += 1;
            continue;
        }
        assert_eq!(answer.status, 200, "a settle verdict: {answer:?}");
        if answer.body["success"] == true {
            let hash = answer.body["transaction"].as_str().expect("a transaction");
            assert!(
                paid.insert(hash.to_owned()),
                "one success per invoice: {answer:?}"
            );
        } else {
            assert_eq!(reason_of(answer), reason::INSUFFICIENT_FUNDS, "{answer:?}");
            short += 1;
        }
    }
    eprintln!(
        "k of n: {} paid, {short} insufficient, {reads} reads",
        paid.len()
    );
    assert_eq!(paid.len(), K, "exactly k settles succeed: {answers:?}");
    assert_eq!(short, N - K, "the rest are insufficient_funds");
    assert_eq!(reads, N.div_ceil(5));
    for instance in instances {
        assert_eq!(balance_of(&client, instance, &key).await, (0, 0, 0));
    }
    audit(database, &[(&key, 0, 0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_funded_for_k_of_n_concurrent_settles_pays_exactly_k_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    k_of_n(&[&service], &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_funded_for_k_of_n_concurrent_settles_pays_exactly_k_over_two_postgres_instances()
 {
    let test = "an_account_funded_for_k_of_n_concurrent_settles_pays_exactly_k_over_two_postgres_instances";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    k_of_n(&[&a, &b], &schema.url).await;
    drop((a, b));
    schema.drop_all().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrent verifies over one balance.

/// `N` verifies of different invoices at once (each on the instance that did not mint it, when
/// there are two) over a balance funded for `K`: `K` holds, the rest `insufficient_funds`. Then
/// every settle at once: the held ones all succeed, the others are short.
async fn verifies_hold_k(instances: &[&Instance], database: &str) {
    const N: usize = 24;
    const K: usize = 9;
    let client = client();
    let key = random_key();
    let funded = K as u64 * PRICE;
    fund(&client, &instances[0].url(""), &key, NETWORK_ID, funded).await;
    let mut invoices = Vec::new();
    for i in 0..N {
        invoices.push(authorize(&client, instances, i % instances.len(), &key).await);
    }
    let calls = invoices
        .iter()
        .map(|invoice| {
            let on = (invoice.minter + 1) % instances.len();
            Call::post(instances[on], "/verify", &invoice.body)
        })
        .collect();
    let answers = race(&client, calls, CLIENTS).await;
    let mut held = Vec::new();
    for (answer, invoice) in answers.iter().zip(&invoices) {
        assert_eq!(answer.status, 200, "a verify verdict: {answer:?}");
        if answer.body["isValid"] == true {
            assert_eq!(answer.body["payer"], key.account());
            held.push(invoice.payment_hash.clone());
        } else {
            assert_eq!(reason_of(answer), reason::INSUFFICIENT_FUNDS, "{answer:?}");
        }
    }
    assert_eq!(held.len(), K, "exactly k verifies hold: {answers:?}");
    assert_eq!(
        balance_of(&client, instances[0], &key).await,
        (funded, funded, 0),
        "k holds, nothing available"
    );
    audit(database, &[(&key, funded, funded)]).await;

    // A second verify of a held invoice keeps its one hold.
    let first = invoices
        .iter()
        .find(|invoice| held.contains(&invoice.payment_hash))
        .expect("a held invoice");
    let calls = (0..8)
        .map(|i| Call::post(instances[i % instances.len()], "/verify", &first.body))
        .collect();
    for answer in race(&client, calls, CLIENTS).await {
        assert_eq!(answer.body["isValid"], true, "{answer:?}");
    }
    audit(database, &[(&key, funded, funded)]).await;

    // Every settle at once, each where its invoice was minted.
    let calls = invoices
        .iter()
        .map(|invoice| Call::post(instances[invoice.minter], "/settle", &invoice.body))
        .collect();
    let answers = race(&client, calls, CLIENTS).await;
    for (answer, invoice) in answers.iter().zip(&invoices) {
        assert_eq!(answer.status, 200, "a settle verdict: {answer:?}");
        if held.contains(&invoice.payment_hash) {
            assert_eq!(
                answer.body["success"], true,
                "a held payment settles: {answer:?}"
            );
        } else {
            assert_eq!(answer.body["success"], false, "{answer:?}");
            assert_eq!(reason_of(answer), reason::INSUFFICIENT_FUNDS, "{answer:?}");
        }
    }
    assert_eq!(balance_of(&client, instances[0], &key).await, (0, 0, 0));
    audit(database, &[(&key, 0, 0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_over_one_balance_hold_exactly_k_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    verifies_hold_k(&[&service], &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_over_one_balance_hold_exactly_k_over_two_postgres_instances() {
    let test = "concurrent_verifies_over_one_balance_hold_exactly_k_over_two_postgres_instances";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    verifies_hold_k(&[&a, &b], &schema.url).await;
    drop((a, b));
    schema.drop_all().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Deposits credited once under concurrent reads.

/// Three rounds of two deposits to one account (a fresh one in the first round), each minted
/// and paid through one instance (both on the first when there is one), then read 32 times at
/// once (deposit reads and signed account reads, spread over `instances`): each credited
/// exactly once, the first round's two credits creating the account at once. An instance whose
/// node took a payment answers it credited at once; another instance (whose simulated node
/// never minted the invoice) may answer `pending` (or, for the account, 404 or the balance
/// before) until the first has credited it.
async fn deposits_read_at_once(instances: &[&Instance], database: &str) {
    let client = client();
    let key = random_key();
    let mut total = 0;
    let mut lagging = 0;
    for amounts in [[7_000, 11_000], [13_000, 17_000], [19_000, 23_000]] {
        let mut deposits = Vec::new();
        for (i, amount) in amounts.into_iter().enumerate() {
            let minter = i % instances.len();
            let base = instances[minter].url("");
            let deposit = deposit_invoice(&client, &base, NETWORK_ID, &key.account(), amount).await;
            let invoice = deposit["invoice"].as_str().expect("an invoice");
            assert_eq!(pay_simulated(&client, &base, invoice).await, 200, "paid");
            let payment_hash = deposit["paymentHash"].as_str().expect("a hash").to_owned();
            deposits.push((minter, amount, payment_hash));
        }
        let before = total;
        total += amounts.iter().sum::<u64>();
        // What a read on instance `on` may see: `before` plus any of this round's deposits,
        // at least those its own node took (each once: the sums are all different).
        let possible = |on: usize, balance: u64| {
            [0b00, 0b01, 0b10, 0b11].iter().any(|&subset: &usize| {
                let sum: u64 = deposits
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| subset & (1 << i) != 0)
                    .map(|(_, (_, amount, _))| amount)
                    .sum();
                let own = deposits
                    .iter()
                    .enumerate()
                    .all(|(i, (minter, _, _))| *minter != on || subset & (1 << i) != 0);
                own && balance == before + sum
            })
        };
        let mut calls = Vec::new();
        let mut plan = Vec::new();
        for i in 0..32 {
            let on = (i / 2) % instances.len();
            if i % 2 == 0 {
                let (minter, amount, payment_hash) = &deposits[(i / 4) % deposits.len()];
                calls.push(Call::get(
                    instances[on],
                    &format!("/accounts/deposits/{payment_hash}"),
                ));
                plan.push((on, Some((*minter, *amount))));
            } else {
                calls.push(Call::read(instances[on], &key));
                plan.push((on, None));
            }
        }
        let answers = race(&client, calls, CLIENTS).await;
        for (answer, (on, deposit)) in answers.iter().zip(plan) {
            match deposit {
                Some((minter, amount)) => {
                    assert_eq!(answer.status, 200, "{answer:?}");
                    assert_eq!(answer.body["amount"], amount.to_string(), "{answer:?}");
                    let credited = answer.body["state"] == "credited";
                    if on == minter {
                        assert!(credited, "its minter answers credited: {answer:?}");
                    } else if !credited {
                        assert_eq!(answer.body["state"], "pending", "{answer:?}");
                        lagging += 1;
                    }
                }
                None if answer.status == 404 => {
                    // Only another instance, before anything was credited.
                    assert!(
                        before == 0 && deposits.iter().all(|(minter, _, _)| *minter != on),
                        "{answer:?}"
                    );
                    lagging += 1;
                }
                None => {
                    assert_eq!(answer.status, 200, "{answer:?}");
                    let balance = msat(&answer.body["balance"]);
                    assert_eq!(msat(&answer.body["held"]), 0, "{answer:?}");
                    assert!(
                        possible(on, balance),
                        "each deposit credited once, those of this instance's node at once: \
                         {balance} after {before}: {answer:?}"
                    );
                    if balance != total {
                        lagging += 1;
                    }
                }
            }
        }
        for instance in instances {
            assert_eq!(balance_of(&client, instance, &key).await, (total, 0, total));
            for (_, _, payment_hash) in &deposits {
                let (status, state) = deposit_state(&client, instance, payment_hash).await;
                assert_eq!((status, state["state"].as_str()), (200, Some("credited")));
            }
        }
        audit(database, &[(&key, total, 0)]).await;
    }
    eprintln!("deposits: {lagging} reads on another instance saw a paid deposit not yet credited");
}

/// `GET /accounts/deposits/{paymentHash}` on `service`.
async fn deposit_state(
    client: &reqwest::Client,
    service: &Instance,
    payment_hash: &str,
) -> (u16, Value) {
    let response = client
        .get(service.url(&format!("/accounts/deposits/{payment_hash}")))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposit_read_32_times_at_once_is_credited_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    deposits_read_at_once(&[&service], &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposit_read_32_times_at_once_over_two_postgres_instances_is_credited_once() {
    let test = "a_deposit_read_32_times_at_once_over_two_postgres_instances_is_credited_once";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    deposits_read_at_once(&[&a, &b], &schema.url).await;
    drop((a, b));
    schema.drop_all().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Concurrent withdrawals of one external invoice.

/// 8 withdrawals of one pending external invoice at once: one 202, seven 409. Settled, the
/// account is debited amount + fee once; 8 more at once while and after it ends are 409 or
/// `duplicate_settlement`, never a second payment.
async fn withdrawals_raced(service: &Instance, database: &str) {
    const AMOUNT: u64 = 20_000;
    const MAX_FEE: u64 = 100;
    // The simulated network's fee: 0.1 %, rounded up.
    const FEE: u64 = AMOUNT.div_ceil(1_000);
    let client = client();
    let key = random_key();
    let funded = 100_000;
    fund(&client, &service.url(""), &key, NETWORK_ID, funded).await;
    let (invoice, payment_hash) = external_invoice(&client, service, AMOUNT, "pending").await;
    let payment_hash = payment_hash.as_str();
    let withdrawal = withdrawal_body(&key, &invoice, MAX_FEE);
    let calls = (0..8)
        .map(|_| Call::post(service, "/accounts/withdrawals", &withdrawal))
        .collect();
    let answers = race(&client, calls, 8).await;
    let started: Vec<_> = answers
        .iter()
        .filter(|answer| answer.status == 202)
        .collect();
    assert_eq!(
        started.len(),
        1,
        "exactly one withdrawal starts: {answers:?}"
    );
    assert_eq!(started[0].body["state"], "pending", "{answers:?}");
    assert_eq!(started[0].body["paymentHash"], payment_hash);
    for answer in answers.iter().filter(|answer| answer.status != 202) {
        assert_eq!(answer.status, 409, "the others: in flight: {answer:?}");
        assert_eq!(answer.body["reason"], "withdrawal_in_flight", "{answer:?}");
    }
    let hold = AMOUNT + MAX_FEE;
    assert_eq!(
        balance_of(&client, service, &key).await,
        (funded, hold, funded - hold),
        "amount + fee limit held once"
    );
    audit(database, &[(&key, funded, hold)]).await;

    // The other node settles it; meanwhile and after, 8 more withdrawals of it at once.
    let response = client
        .post(service.url(&format!("/pay/external/{payment_hash}/settle")))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 200);
    let calls = (0..8)
        .map(|_| Call::post(service, "/accounts/withdrawals", &withdrawal))
        .collect();
    for answer in race(&client, calls, 8).await {
        match answer.status {
            409 => assert_eq!(answer.body["reason"], "withdrawal_in_flight", "{answer:?}"),
            400 => assert_eq!(
                answer.body["reason"],
                reason::DUPLICATE_SETTLEMENT,
                "{answer:?}"
            ),
            _ => panic!("never a second payment: {answer:?}"),
        }
    }
    let path = format!(
        "/accounts/{NETWORK_ID}/{}/withdrawals/{payment_hash}",
        key.account()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let response = client
            .get(service.url(&path))
            .header(
                "X402-Account-Signature",
                key.account_read_signature(NETWORK_ID, unix_now()),
            )
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON");
        if status == 200 {
            break body;
        }
        assert_eq!(status, 202, "{body}");
        assert!(
            Instant::now() < deadline,
            "the withdrawal ends within 30 s of its payment: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended["state"], "succeeded", "{ended}");
    assert_eq!(ended["feeMsat"], FEE.to_string(), "{ended}");
    let left = funded - AMOUNT - FEE;
    assert_eq!(
        balance_of(&client, service, &key).await,
        (left, 0, left),
        "amount + fee debited once, the rest of the hold released"
    );

    // Paid: every further withdrawal of it is a duplicate.
    let calls = (0..8)
        .map(|_| Call::post(service, "/accounts/withdrawals", &withdrawal))
        .collect();
    for answer in race(&client, calls, 8).await {
        assert_eq!(answer.status, 400, "{answer:?}");
        assert_eq!(
            answer.body["reason"],
            reason::DUPLICATE_SETTLEMENT,
            "{answer:?}"
        );
    }
    assert_eq!(balance_of(&client, service, &key).await, (left, 0, left));
    audit(database, &[(&key, left, 0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_withdrawals_of_one_invoice_start_once_and_debit_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    withdrawals_raced(&service, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_withdrawals_of_one_invoice_start_once_and_debit_once_on_postgres() {
    let test = "eight_concurrent_withdrawals_of_one_invoice_start_once_and_debit_once_on_postgres";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    // One instance: the external invoice and its payment live in its simulated node's memory.
    let service = start(dir.path(), &schema.url, &node_key());
    withdrawals_raced(&service, &schema.url).await;
    drop(service);
    schema.drop_all().await;
}

/// Asks `service`'s simulated other node for an invoice of `amount` msat meeting `outcome`;
/// the invoice and its payment hash.
async fn external_invoice(
    client: &reqwest::Client,
    service: &Instance,
    amount: u64,
    outcome: &str,
) -> (String, String) {
    let response = client
        .post(service.url("/pay/external"))
        .json(&json!({ "amount": amount.to_string(), "network": NETWORK_ID, "outcome": outcome }))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 201);
    let external: Value = response.json().await.expect("JSON");
    (
        external["invoice"].as_str().expect("an invoice").to_owned(),
        external["paymentHash"].as_str().expect("a hash").to_owned(),
    )
}

/// The withdrawal body paying `invoice` from `key`'s account.
fn withdrawal_body(key: &AccountKey, invoice: &str, max_fee: u64) -> Value {
    json!({
        "network": NETWORK_ID,
        "account": key.account(),
        "invoice": invoice,
        "maxFeeMsat": max_fee.to_string(),
        "signature": key.sign_withdrawal(invoice, max_fee),
    })
}

/// 8 withdrawals at once of an invoice whose payment fails: each that starts fails (200
/// `failed`, nothing debited, its hold released) and the invoice may be tried again; then,
/// once the other node accepts it, 8 at once: one payment, debited once.
async fn failed_withdrawals_retried(service: &Instance, database: &str) {
    const AMOUNT: u64 = 20_000;
    const MAX_FEE: u64 = 100;
    const FEE: u64 = AMOUNT.div_ceil(1_000);
    let client = client();
    let key = random_key();
    let funded = 50_000;
    fund(&client, &service.url(""), &key, NETWORK_ID, funded).await;
    let (invoice, payment_hash) = external_invoice(&client, service, AMOUNT, "fail").await;
    let withdrawal = withdrawal_body(&key, &invoice, MAX_FEE);
    let calls = (0..8)
        .map(|_| Call::post(service, "/accounts/withdrawals", &withdrawal))
        .collect();
    let answers = race(&client, calls, 8).await;
    let mut failed = 0;
    for answer in &answers {
        match answer.status {
            200 => {
                assert_eq!(answer.body["state"], "failed", "{answer:?}");
                failed += 1;
            }
            409 => assert_eq!(answer.body["reason"], "withdrawal_in_flight", "{answer:?}"),
            _ => panic!("a failed payment is failed or in flight: {answer:?}"),
        }
    }
    eprintln!(
        "failed withdrawals: {failed} tried, {} in flight",
        8 - failed
    );
    assert!(failed >= 1, "{answers:?}");
    assert_eq!(
        balance_of(&client, service, &key).await,
        (funded, 0, funded),
        "nothing debited, every hold released"
    );
    audit(database, &[(&key, funded, 0)]).await;

    // The other node now accepts it: the next try pays it, once.
    let response = client
        .post(service.url(&format!("/pay/external/{payment_hash}/settle")))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 200);
    let calls = (0..8)
        .map(|_| Call::post(service, "/accounts/withdrawals", &withdrawal))
        .collect();
    let answers = race(&client, calls, 8).await;
    let mut succeeded = 0;
    for answer in &answers {
        match answer.status {
            200 => {
                assert_eq!(answer.body["state"], "succeeded", "{answer:?}");
                assert_eq!(answer.body["feeMsat"], FEE.to_string(), "{answer:?}");
                succeeded += 1;
            }
            409 => assert_eq!(answer.body["reason"], "withdrawal_in_flight", "{answer:?}"),
            400 => assert_eq!(
                answer.body["reason"],
                reason::DUPLICATE_SETTLEMENT,
                "{answer:?}"
            ),
            _ => panic!("{answer:?}"),
        }
    }
    assert_eq!(succeeded, 1, "paid once: {answers:?}");
    let left = funded - AMOUNT - FEE;
    assert_eq!(balance_of(&client, service, &key).await, (left, 0, left));
    audit(database, &[(&key, left, 0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_of_a_failing_invoice_never_debit_and_pay_once_later_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    failed_withdrawals_retried(&service, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_of_a_failing_invoice_never_debit_and_pay_once_later_on_postgres() {
    let test =
        "concurrent_withdrawals_of_a_failing_invoice_never_debit_and_pay_once_later_on_postgres";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let service = start(dir.path(), &schema.url, &node_key());
    failed_withdrawals_retried(&service, &schema.url).await;
    drop(service);
    schema.drop_all().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Everything that spends one balance, at once.

/// One account spent at once by 30 settles, 4 withdrawals (each sent twice) and a deposit
/// credited by reads in the race, over `instances` (each invoice settled or withdrawn where it
/// was minted): the demand exceeds the balance; whatever wins, the balance is the funding
/// minus what succeeded, never negative, and nothing is refused while enough was available.
async fn mixed_spending(instances: &[&Instance], database: &str) {
    const SETTLES: usize = 30;
    const WITHDRAWALS: usize = 4;
    const AMOUNT: u64 = 5_000;
    const MAX_FEE: u64 = 10;
    const FEE: u64 = AMOUNT.div_ceil(1_000);
    const DEPOSIT: u64 = 3_000;
    let client = client();
    let key = random_key();
    let funded = 47_000;
    fund(&client, &instances[0].url(""), &key, NETWORK_ID, funded).await;
    let mut invoices = Vec::new();
    for i in 0..SETTLES {
        invoices.push(authorize(&client, instances, i % instances.len(), &key).await);
    }
    let mut externals = Vec::new();
    for i in 0..WITHDRAWALS {
        let on = i % instances.len();
        let (invoice, payment_hash) =
            external_invoice(&client, instances[on], AMOUNT, "succeed").await;
        externals.push((on, payment_hash, withdrawal_body(&key, &invoice, MAX_FEE)));
    }
    // A deposit paid before the race, credited by whichever read comes first.
    let deposit = deposit_invoice(
        &client,
        &instances[0].url(""),
        NETWORK_ID,
        &key.account(),
        DEPOSIT,
    )
    .await;
    let paid = deposit["invoice"].as_str().expect("an invoice");
    assert_eq!(
        pay_simulated(&client, &instances[0].url(""), paid).await,
        200
    );
    let deposit_hash = deposit["paymentHash"].as_str().expect("a hash");

    let mut calls = Vec::new();
    for (i, invoice) in invoices.iter().enumerate() {
        calls.push(Call::post(
            instances[invoice.minter],
            "/settle",
            &invoice.body,
        ));
        if i % 3 == 0 {
            let (on, _, body) = &externals[(i / 3) % WITHDRAWALS];
            calls.push(Call::post(instances[*on], "/accounts/withdrawals", body));
        }
        if i % 6 == 0 {
            calls.push(Call::read(instances[0], &key));
            calls.push(Call::get(
                instances[0],
                &format!("/accounts/deposits/{deposit_hash}"),
            ));
        }
    }
    let answers = race(&client, calls, CLIENTS).await;
    let (mut settled, mut settle_short) = (0, 0);
    let mut withdrawn = HashSet::new();
    let mut withdrawal_short = 0;
    for answer in &answers {
        let body = &answer.body;
        if body.get("balance").is_some() {
            assert_eq!(answer.status, 200, "{answer:?}");
            let (balance, held, available) = (
                msat(&body["balance"]),
                msat(&body["held"]),
                msat(&body["available"]),
            );
            assert_eq!(available, balance - held, "never negative: {answer:?}");
            assert!(balance <= funded + DEPOSIT, "{answer:?}");
        } else if body.get("state").is_some()
            && body.get("amount").is_some()
            && answer.status == 200
            && body.get("paymentHash") == Some(&json!(deposit_hash))
        {
            assert_eq!(body["state"], "credited", "{answer:?}");
        } else if body.get("success").is_some() {
            assert_eq!(answer.status, 200, "{answer:?}");
            if body["success"] == true {
                settled += 1;
            } else {
                assert_eq!(reason_of(answer), reason::INSUFFICIENT_FUNDS, "{answer:?}");
                settle_short += 1;
            }
        } else {
            match (
                answer.status,
                body["state"].as_str(),
                body["reason"].as_str(),
            ) {
                (200, Some("succeeded"), _) => {
                    assert_eq!(body["feeMsat"], FEE.to_string(), "{answer:?}");
                    let hash = body["paymentHash"].as_str().expect("a hash");
                    assert!(withdrawn.insert(hash.to_owned()), "paid once: {answer:?}");
                }
                (400, _, Some(reason::INSUFFICIENT_FUNDS)) => withdrawal_short += 1,
                (400, _, Some(reason::DUPLICATE_SETTLEMENT)) | (409, _, _) => {}
                _ => panic!("a withdrawal answer: {answer:?}"),
            }
        }
    }
    let spent = settled as u64 * PRICE + withdrawn.len() as u64 * (AMOUNT + FEE);
    let left = funded + DEPOSIT - spent;
    eprintln!(
        "mixed: {settled} settled, {settle_short} short; {} withdrawn, {withdrawal_short} short; {left} left",
        withdrawn.len()
    );
    assert_eq!(settled + settle_short, SETTLES);
    // Available only ever grows back by the unused part of a withdrawal's fee limit.
    let slack = WITHDRAWALS as u64 * (MAX_FEE - FEE);
    if settle_short > 0 {
        assert!(
            left < PRICE + slack,
            "a settle was refused with {left} left"
        );
    }
    if withdrawal_short > 0 {
        assert!(
            left < AMOUNT + MAX_FEE + slack,
            "a withdrawal was refused with {left} left"
        );
    }
    for instance in instances {
        assert_eq!(balance_of(&client, instance, &key).await, (left, 0, left));
    }
    audit(database, &[(&key, left, 0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settles_withdrawals_and_a_deposit_at_once_leave_the_books_exact_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = sqlite_url(dir.path());
    let service = start(dir.path(), &database, &node_key());
    mixed_spending(&[&service], &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settles_withdrawals_and_a_deposit_at_once_leave_the_books_exact_over_two_postgres_instances()
 {
    let test = "settles_withdrawals_and_a_deposit_at_once_leave_the_books_exact_over_two_postgres_instances";
    let Some((_one_at_a_time, schema)) = postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = start_two(dir.path(), &schema.url);
    mixed_spending(&[&a, &b], &schema.url).await;
    drop((a, b));
    schema.drop_all().await;
}
