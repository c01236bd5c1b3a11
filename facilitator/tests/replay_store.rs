//! The replay store's guarantees, end to end: a spent proof stays spent across a killed process,
//! one proof raced by 32 settles succeeds once (SQLite; PostgreSQL with two service instances
//! on one database), and the purge keeps the store bounded without ever dropping a live key.
//!
//! The PostgreSQL tests need `X402_FACILITATOR_TEST_POSTGRES_URL` (`.ci/run` sets it to the
//! machine's server); without it they say they are skipped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use x402_lightning::Network;
use x402_lightning::clock::{Clock, ManualClock};
use x402_lightning::mock::MockNode;
use x402_lightning_facilitator::books::{
    AccountId, AuditRow, Balance, Books, DepositRecord, HoldRequest, InvoiceRecord, Outcome,
    PaymentRequest, WithdrawalEnd, WithdrawalRecord, WithdrawalStart,
};
use x402_lightning_facilitator::config::MAX_SKEW_SECONDS;
use x402_lightning_facilitator::store::{
    Inserted, PostgresStore, ReplayEntry, ReplayStore, SqliteStore, StoreFuture,
};
use x402_lightning_facilitator::{Config, Service, serve};

use self::common::{
    Instance, PgSchema, Proof, postgres_url, serve_on_loopback, sqlite_store, sqlite_url,
};

/// A fixed clock for the service processes: proofs are minted at this time.
const NOW: u64 = 1_700_000_000;

/// The service on `database`, its clock pinned at [`NOW`].
fn start(dir: &std::path::Path, database: &str) -> Instance {
    Instance::start(
        dir,
        &[
            ("X402_FACILITATOR_DATABASE_URL", database),
            ("X402_FACILITATOR_TEST_NOW", &NOW.to_string()),
        ],
    )
}

async fn settle(client: &reqwest::Client, service: &Instance, proof: &Proof) -> Value {
    let response = client
        .post(service.url("/settle"))
        .json(&proof.settle_body())
        .send()
        .await
        .expect("POST /settle");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

fn reason(answer: &Value) -> &str {
    answer["errorReason"].as_str().unwrap_or("none")
}

#[tokio::test]
async fn a_settled_proof_stays_spent_after_the_process_is_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = sqlite_url(dir.path());
    let node = MockNode::random();
    let proof = Proof::mint(&node, Network::Regtest, NOW);
    let client = reqwest::Client::new();

    let first = start(dir.path(), &database);
    let answer = settle(&client, &first, &proof).await;
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["transaction"], proof.payment_hash.as_str());
    first.kill(); // SIGKILL: no shutdown, no flush beyond what the settle committed

    let second = start(dir.path(), &database);
    let answer = settle(&client, &second, &proof).await;
    assert_eq!(answer["success"], false, "{answer}");
    assert_eq!(reason(&answer), "duplicate_settlement");
    // The restarted service settles other proofs as before.
    let fresh = Proof::mint(&node, Network::Regtest, NOW);
    assert_eq!(settle(&client, &second, &fresh).await["success"], true);
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(dir.path(), &sqlite_url(dir.path()));
    let client = reqwest::Client::new();
    let proof = Proof::mint(&MockNode::random(), Network::Regtest, NOW);
    assert_eq!(settle(&client, &service, &proof).await["success"], true);
    let log = service.log.clone();
    assert!(service.terminate(), "exit status 0 after SIGTERM");
    let log = std::fs::read_to_string(log).expect("log");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        log.contains("PINNED"),
        "the pinned clock is logged loudly: {log}"
    );
}

/// Sends the settle of `proof` 32 times at once, spread over `services`; returns the answers.
async fn race(services: &[&Instance], proof: &Proof) -> Vec<Value> {
    let client = reqwest::Client::new();
    let body = proof.settle_body();
    let settles = (0..32).map(|i| {
        let request = client
            .post(services[i % services.len()].url("/settle"))
            .json(&body);
        async move {
            let response = request.send().await.expect("POST /settle");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON")
        }
    });
    let handles: Vec<_> = settles.map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("task"));
    }
    answers
}

fn assert_one_success(answers: &[Value]) {
    let successes = answers.iter().filter(|a| a["success"] == true).count();
    assert_eq!(successes, 1, "exactly one settle succeeds: {answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a["success"] != true)
            .all(|a| reason(a) == "duplicate_settlement"),
        "{answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_settles_of_one_proof_succeed_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = sqlite_url(dir.path());
    let one = start(dir.path(), &database);
    let node = MockNode::random();
    for _ in 0..5 {
        assert_one_success(&race(&[&one], &Proof::mint(&node, Network::Regtest, NOW)).await);
    }
    // Two processes on the same file: SQLite's locking still lets one insert win.
    let two = start(dir.path(), &database);
    for _ in 0..5 {
        assert_one_success(&race(&[&one, &two], &Proof::mint(&node, Network::Regtest, NOW)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_database_never_both_settle_a_proof() {
    let Some(base) =
        postgres_url("two_instances_on_one_postgres_database_never_both_settle_a_proof")
    else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let database = schema.url.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    // Both start at once: the migrations take PostgreSQL's advisory lock.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| start(dir.path(), &database));
        let b = scope.spawn(|| start(dir.path(), &database));
        (a.join().expect("a starts"), b.join().expect("b starts"))
    });
    let node = MockNode::random();
    for _ in 0..10 {
        assert_one_success(&race(&[&a, &b], &Proof::mint(&node, Network::Regtest, NOW)).await);
    }
    // A settled proof stays spent for an instance that restarts on the database.
    let proof = Proof::mint(&node, Network::Regtest, NOW);
    let client = reqwest::Client::new();
    assert_eq!(settle(&client, &a, &proof).await["success"], true);
    a.kill();
    let c = start(dir.path(), &database);
    assert_eq!(
        reason(&settle(&client, &c, &proof).await),
        "duplicate_settlement"
    );
    assert_eq!(
        reason(&settle(&client, &b, &proof).await),
        "duplicate_settlement"
    );
    drop((b, c));
    schema.drop_all().await;
}

fn entry(key: &str, retain_until: u64) -> ReplayEntry {
    ReplayEntry {
        key: key.to_owned(),
        retain_until,
        settled_at: 0,
    }
}

/// The purge removes only entries strictly past their retention.
async fn purge_keeps_live_keys(store: &dyn ReplayStore) {
    for (key, retain_until) in [("a", 100), ("b", 200), ("c", 300)] {
        assert_eq!(
            store
                .insert_if_absent(&entry(key, retain_until))
                .await
                .expect("insert"),
            Inserted::New
        );
    }
    assert_eq!(
        store.purge(200).await.expect("purge"),
        1,
        "only `a` is past 200"
    );
    assert_eq!(store.count().await.expect("count"), 2);
    // `b` is live at its own retain_until: still a duplicate.
    assert_eq!(
        store
            .insert_if_absent(&entry("b", 999))
            .await
            .expect("insert"),
        Inserted::AlreadyPresent
    );
    assert_eq!(store.purge(201).await.expect("purge"), 1);
    assert_eq!(
        store
            .insert_if_absent(&entry("c", 999))
            .await
            .expect("insert"),
        Inserted::AlreadyPresent
    );
    // A purged key may be recorded again: no invoice can pass validation by then.
    assert_eq!(
        store
            .insert_if_absent(&entry("a", 999))
            .await
            .expect("insert"),
        Inserted::New
    );
}

#[tokio::test]
async fn the_purge_never_drops_a_live_key_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&sqlite_url(dir.path()))
        .await
        .expect("opens");
    purge_keeps_live_keys(&store).await;
}

#[tokio::test]
async fn the_purge_never_drops_a_live_key_on_postgres() {
    let Some(base) = postgres_url("the_purge_never_drops_a_live_key_on_postgres") else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = PostgresStore::open(&schema.url).await.expect("opens");
    purge_keeps_live_keys(&store).await;
    store.close().await;
    schema.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_proof_is_kept_until_an_hour_after_its_invoice_can_no_longer_pass() {
    // The service in process, its clock in the test's hand.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(dir.path()).await;
    let clock = ManualClock::at_unix(Duration::from_secs(NOW));
    let node = MockNode::random();
    let simulated =
        x402_lightning_facilitator::node::SimulatedNode::random(Arc::new(clock.clone()));
    let service = Arc::new(
        Service::with_parts(
            store.clone(),
            Arc::new(simulated),
            &Config::default(),
            Arc::new(clock.clone()),
        )
        .expect("a valid configuration"),
    );
    let url = format!("http://{}/settle", serve_on_loopback(service.clone()).await);

    let proof = Proof::mint(&node, Network::Regtest, NOW);
    let client = reqwest::Client::new();
    let send = || async {
        client
            .post(&url)
            .json(&proof.settle_body())
            .send()
            .await
            .expect("POST")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    assert_eq!(send().await["success"], true);
    // The invoice (300 s) can pass until NOW + 300 + 60 (skew); the entry stays an hour after
    // the largest skew any instance may use (600 s).
    let retain_until = NOW + 300 + MAX_SKEW_SECONDS + 3600;
    clock.advance(Duration::from_secs(retain_until - NOW));
    assert_eq!(clock.unix_now().as_secs(), retain_until);
    assert_eq!(
        service.purge().await.expect("purge"),
        0,
        "kept at retain_until"
    );
    assert_eq!(store.count().await.expect("count"), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(service.purge().await.expect("purge"), 1, "gone after it");
    // And the proof cannot come back: its invoice expired long ago.
    assert_eq!(reason(&send().await), "invalid_exact_lnbtc_invoice_expired");
}

/// 100,000 settles with the clock moving one second per settle and a purge every 1,000: the
/// store never holds more than the retention window's worth of entries.
async fn stays_bounded(store: &dyn ReplayStore) {
    const SETTLES: u64 = 100_000;
    const PURGE_EVERY: u64 = 1_000;
    // Every entry lives invoice_end + skew + 1 h = 300 + 60 + 3600 s after its settle.
    const RETENTION: u64 = 300 + 60 + 3600;
    let mut largest = 0;
    for i in 0..SETTLES {
        let now = NOW + i;
        let inserted = store
            .insert_if_absent(&ReplayEntry {
                key: format!("lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328:{i:064x}"),
                retain_until: now + RETENTION,
                settled_at: now,
            })
            .await
            .expect("insert");
        assert_eq!(inserted, Inserted::New);
        if i % PURGE_EVERY == PURGE_EVERY - 1 {
            store.purge(now).await.expect("purge");
            let count = store.count().await.expect("count");
            largest = largest.max(count);
            // Live: the entries with retain_until >= now, i.e. the last RETENTION + 1 settles.
            assert!(count <= RETENTION + 1, "{count} entries after settle {i}");
        }
    }
    assert!(largest >= RETENTION, "the window was reached: {largest}");
}

#[tokio::test]
async fn the_store_stays_bounded_over_100k_settles_on_sqlite() {
    // On tmpfs when there is one: the bound is the point here, not the disk's fsync rate.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let store = SqliteStore::open(&sqlite_url(dir.path()))
        .await
        .expect("opens");
    stays_bounded(&store).await;
}

#[tokio::test]
async fn the_store_stays_bounded_over_100k_settles_on_postgres() {
    let Some(base) = postgres_url("the_store_stays_bounded_over_100k_settles_on_postgres") else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = PostgresStore::open(&schema.url).await.expect("opens");
    stays_bounded(&store).await;
    store.close().await;
    schema.drop_all().await;
}

/// A store whose inserts wait for the test's signal.
#[derive(Debug)]
struct HeldStore {
    inner: SqliteStore,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl ReplayStore for HeldStore {
    fn insert_if_absent<'a>(&'a self, entry: &'a ReplayEntry) -> StoreFuture<'a, Inserted> {
        Box::pin(async move {
            self.entered.notify_one();
            self.release.notified().await;
            self.inner.insert_if_absent(entry).await
        })
    }

    fn purge(&self, now: u64) -> StoreFuture<'_, u64> {
        self.inner.purge(now)
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        self.inner.count()
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }

    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.inner.close()
    }
}

/// The books are the inner store's, untouched: only the replay inserts are held.
impl Books for HeldStore {
    fn record_invoice<'a>(&'a self, invoice: &'a InvoiceRecord) -> StoreFuture<'a, ()> {
        self.inner.record_invoice(invoice)
    }

    fn recorded_invoice<'a>(
        &'a self,
        payment_hash: &'a str,
    ) -> StoreFuture<'a, Option<InvoiceRecord>> {
        self.inner.recorded_invoice(payment_hash)
    }

    fn is_paid<'a>(&'a self, replay_key: &'a str) -> StoreFuture<'a, bool> {
        self.inner.is_paid(replay_key)
    }

    fn hold<'a>(&'a self, hold: &'a HoldRequest, now: u64) -> StoreFuture<'a, Outcome> {
        self.inner.hold(hold, now)
    }

    fn release<'a>(
        &'a self,
        account: &'a AccountId,
        payment_hash: &'a str,
        now: u64,
    ) -> StoreFuture<'a, ()> {
        self.inner.release(account, payment_hash, now)
    }

    fn pay<'a>(&'a self, payment: &'a PaymentRequest, now: u64) -> StoreFuture<'a, Outcome> {
        self.inner.pay(payment, now)
    }

    fn balance<'a>(&'a self, account: &'a AccountId, now: u64) -> StoreFuture<'a, Option<Balance>> {
        self.inner.balance(account, now)
    }

    fn record_deposit<'a>(
        &'a self,
        deposit: &'a DepositRecord,
        now: u64,
        max_pending: u32,
    ) -> StoreFuture<'a, bool> {
        self.inner.record_deposit(deposit, now, max_pending)
    }

    fn deposit<'a>(&'a self, payment_hash: &'a str) -> StoreFuture<'a, Option<DepositRecord>> {
        self.inner.deposit(payment_hash)
    }

    fn pending_deposits<'a>(
        &'a self,
        account: Option<&'a AccountId>,
        expiring_from: u64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<DepositRecord>> {
        self.inner.pending_deposits(account, expiring_from, limit)
    }

    fn deposit_checked<'a>(&'a self, payment_hash: &'a str, now: u64) -> StoreFuture<'a, ()> {
        self.inner.deposit_checked(payment_hash, now)
    }

    fn release_all<'a>(&'a self, payment_hash: &'a str, now: u64) -> StoreFuture<'a, ()> {
        self.inner.release_all(payment_hash, now)
    }

    fn credit_deposit<'a>(&'a self, payment_hash: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.inner.credit_deposit(payment_hash, now)
    }

    fn start_withdrawal<'a>(
        &'a self,
        withdrawal: &'a WithdrawalRecord,
        now: u64,
    ) -> StoreFuture<'a, WithdrawalStart> {
        self.inner.start_withdrawal(withdrawal, now)
    }

    fn end_withdrawal<'a>(
        &'a self,
        payment_hash: &'a str,
        end: &'a WithdrawalEnd,
        now: u64,
    ) -> StoreFuture<'a, Option<WithdrawalRecord>> {
        self.inner.end_withdrawal(payment_hash, end, now)
    }

    fn withdrawal<'a>(
        &'a self,
        payment_hash: &'a str,
    ) -> StoreFuture<'a, Option<WithdrawalRecord>> {
        self.inner.withdrawal(payment_hash)
    }

    fn pending_withdrawals(&self) -> StoreFuture<'_, Vec<WithdrawalRecord>> {
        self.inner.pending_withdrawals()
    }

    fn audit(&self) -> StoreFuture<'_, Vec<AuditRow>> {
        self.inner.audit()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_settle_finishes_before_shutdown_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(HeldStore {
        inner: SqliteStore::open(&sqlite_url(dir.path()))
            .await
            .expect("opens"),
        entered: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    let clock = Arc::new(ManualClock::at_unix(Duration::from_secs(NOW)));
    let node = x402_lightning_facilitator::node::SimulatedNode::random(clock.clone());
    let service = Arc::new(
        Service::with_parts(store.clone(), Arc::new(node), &Config::default(), clock)
            .expect("a valid configuration"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}/settle");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, service, async {
        let _ = stopped.await;
    }));

    let proof = Proof::mint(&MockNode::random(), Network::Regtest, NOW);
    let settle = tokio::spawn(async move {
        reqwest::Client::new()
            .post(&url)
            .json(&proof.settle_body())
            .send()
            .await
            .expect("answered despite the shutdown")
            .json::<Value>()
            .await
            .expect("JSON")
    });
    store.entered.notified().await; // the settle is at the store
    stop.send(()).expect("shutdown signalled");
    // Shutting down: the listener closes (new connections are refused) while the settle waits.
    let mut attempts = 0;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        attempts += 1;
        assert!(attempts < 10_000, "the listener never closed");
        tokio::task::yield_now().await;
    }
    assert!(!server.is_finished(), "shutdown waits for the settle");
    store.release.notify_one();
    assert_eq!(settle.await.expect("task")["success"], true);
    server.await.expect("task").expect("served");
    assert!(
        store.inner.count().await.is_err(),
        "the store is closed once the last request is answered"
    );
}
