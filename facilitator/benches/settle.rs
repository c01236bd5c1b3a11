//! `POST /settle` throughput and latency, against the real release binary, for both replay
//! stores (a SQLite file, a PostgreSQL schema) at 1 and 32 concurrent clients, in three
//! workloads:
//!
//! - `lnbtc`: x402 v2 `exact` on `lnbtc` settles (a preimage proof each, settled upfront);
//! - `seed-pair`: the seed flow (x402 v1, `PROTOCOL.md` Part 3) as the layer drives it, a
//!   `POST /verify` (which places a hold) then a `POST /settle` (which pays inside the books)
//!   of one invoice, timed as a pair, and each call's own latency;
//! - `seed-settle`: the seed flow's `POST /settle` alone, of invoices verified (held) in the
//!   untimed setup, as the layer's settle after its handler.
//!
//! `cargo bench -p x402-lightning-facilitator --bench settle`
//!
//! - One service process per configuration (workload × store × clients), each on a fresh
//!   store: a new SQLite file in a temporary directory on the real disk, or a new schema in the
//!   database of `X402_FACILITATOR_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`; the PostgreSQL rows are skipped when it is
//!   unreachable), dropped at the end.
//! - `lnbtc`: every proof (a fresh invoice of a mock node, bound to a random request hash, and
//!   its preimage) is minted and its body serialized before the clock starts, and settled
//!   exactly once, the clients taking bodies from one shared queue.
//! - Seed flow: one account per client, funded before the first round through the service's
//!   deposits (`POST /accounts/deposits`, `POST /pay` on the simulated node, `GET
//!   /accounts/deposits/{hash}` until `credited`). Before each round, untimed: every invoice is
//!   minted with `POST /requirements` (no `descriptionHash`: the seed flow's recorded invoice)
//!   and its authorization signed by the client's account key; `seed-settle` also verifies
//!   each one there. Each client then works through its own invoices, one at a time.
//! - Every answer must be 200 with `"isValid": true` / `"success": true`, or the run is invalid
//!   (exit status 1).
//! - The configurations run interleaved in rounds (BENCHMARKING.md): the rate is the median of
//!   the rounds, every round is printed, p50/p99 are over every request (pair) of the
//!   configuration. 50 warm-up requests (pairs) per configuration are left out of the figures.
//! - Beside throughput: CPU time per request (pair) of the service process, of the PostgreSQL
//!   server processes and of the load generator (`/proc`), the machine's busy/iowait/steal
//!   shares, and a raw fsync-per-commit baseline of the disk.
//!
//! Environment: `SETTLE_BENCH_N` (requests, or pairs, per configuration; default 1,000 at 1
//! client and 4,000 at 32), `SETTLE_BENCH_ROUNDS` (default 5), `SETTLE_BENCH_WORKLOADS`
//! (comma-separated, default `lnbtc,seed-pair,seed-settle`), `SETTLE_BENCH_PIN=0` (do not pin
//! the services to core 0 and the load generator to core 1), `SETTLE_BENCH_STATEMENTS=1` (a
//! profile: the services log every SQL statement with its time, `RUST_LOG=sqlx::query=debug`,
//! and a table per configuration sums them over the timed rounds; the logging slows the
//! services, so the throughput of such a run is not the service's).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::hex::DisplayHex as _;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool};
use x402_lightning::Network;
use x402_lightning::lnbtc::types::{
    LnbtcExtra, PaymentPayload, PaymentRequirements, SettleRequest,
};
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning::v1::AccountKey;
use x402_lightning::v1::types::{
    PaymentRequirements as SeedRequirements, RequirementsRequest, VerifyRequest,
};
use x402_lightning_facilitator::store::redact_password;

#[path = "common/mod.rs"]
mod common;

use common::{
    BINARY, BoxError, SEED_NETWORK_ID, Service, cpu_model, expect_json, filesystem_of, fund, ms,
    percentile, pin_this_process, read_trimmed,
};

/// Regtest: the network the proofs are minted on and the service settles.
const NETWORK: Network = Network::Regtest;
const NETWORK_ID: &str = "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328";
/// The price of one invoice, in msat (the `lnbtc` proofs' and the seed flow's).
const AMOUNT_MSAT: u64 = 10_000;
/// The seed flow invoices' expiry (`maxTimeoutSeconds`): minted just before their round.
const SEED_EXPIRY_SECS: u64 = 600;
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Concurrent clients measured.
const CLIENTS: [usize; 2] = [1, 32];
/// Requests (pairs) per configuration by default, by client count.
const DEFAULT_REQUESTS: [usize; 2] = [1_000, 4_000];
const DEFAULT_ROUNDS: usize = 5;
/// Warm-up requests (pairs) per configuration, before its first round, left out of the figures.
const WARMUP: usize = 50;
/// Commits of the fsync baseline.
const BASELINE_COMMITS: usize = 200;
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The warnings every service here logs at start (a simulated node, no API key).
const STARTUP_WARNINGS: [&str; 2] = ["the node is SIMULATED", "no API key"];

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("settle bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Pin before the runtime (and any thread) exists: every later thread inherits the mask.
    let pinned = settings.pin && cores >= 2 && pin_this_process(1, "the load generator");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("settle bench: tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, cores, pinned)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!(
                "\nINVALID RUN: some requests did not answer 200 \"isValid\"/\"success\": true, \
                 or the books do not add up (above)"
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("settle bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What a configuration's clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// `POST /settle` of an `lnbtc` preimage proof (x402 v2).
    Lnbtc,
    /// `POST /verify` then `POST /settle` of one seed-flow invoice (x402 v1).
    SeedPair,
    /// `POST /settle` alone of a seed-flow invoice verified (held) in the setup.
    SeedSettle,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Lnbtc, Workload::SeedPair, Workload::SeedSettle];

    fn name(self) -> &'static str {
        match self {
            Workload::Lnbtc => "lnbtc",
            Workload::SeedPair => "seed-pair",
            Workload::SeedSettle => "seed-settle",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Workload::Lnbtc => {
                "lnbtc: POST /settle of a preimage proof (x402 v2, exact on lnbtc), one settle per request"
            }
            Workload::SeedPair => {
                "seed-pair: POST /verify (hold) + POST /settle (pay in the books) of one invoice, \
                 x402 v1 from a prepaid account, timed as a pair"
            }
            Workload::SeedSettle => {
                "seed-settle: POST /settle alone, x402 v1 from a prepaid account, of invoices \
                 verified (held) in the untimed setup: the layer's settle after its handler"
            }
        }
    }

    /// What one timed unit is, plural.
    fn unit(self) -> &'static str {
        match self {
            Workload::Lnbtc | Workload::SeedSettle => "settles",
            Workload::SeedPair => "pairs",
        }
    }

    fn is_seed(self) -> bool {
        self != Workload::Lnbtc
    }

    fn parse_list(text: &str) -> Result<Vec<Workload>, BoxError> {
        let mut workloads = Vec::new();
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let workload = Workload::ALL
                .into_iter()
                .find(|workload| workload.name() == name)
                .ok_or_else(|| {
                    format!(
                        "SETTLE_BENCH_WORKLOADS: unknown workload {name:?} (lnbtc, seed-pair, seed-settle)"
                    )
                })?;
            if !workloads.contains(&workload) {
                workloads.push(workload);
            }
        }
        if workloads.is_empty() {
            return Err("SETTLE_BENCH_WORKLOADS names no workload".into());
        }
        Ok(workloads)
    }
}

/// The benchmark's knobs, from the environment.
#[derive(Clone, Debug)]
struct Settings {
    /// Requests (pairs) per configuration (`SETTLE_BENCH_N`), or the defaults.
    requests: Option<usize>,
    rounds: usize,
    pin: bool,
    workloads: Vec<Workload>,
    /// Log and sum every SQL statement of the timed rounds (`SETTLE_BENCH_STATEMENTS=1`).
    statements: bool,
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        let number = |name: &str| -> Result<Option<usize>, BoxError> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => {
                    let value: usize = text
                        .trim()
                        .parse()
                        .map_err(|err| format!("{name}={text}: {err}"))?;
                    if value == 0 {
                        return Err(format!("{name} must be at least 1").into());
                    }
                    Ok(Some(value))
                }
                _ => Ok(None),
            }
        };
        let workloads = match std::env::var("SETTLE_BENCH_WORKLOADS") {
            Ok(text) if !text.trim().is_empty() => Workload::parse_list(&text)?,
            _ => Workload::ALL.to_vec(),
        };
        Ok(Self {
            requests: number("SETTLE_BENCH_N")?,
            rounds: number("SETTLE_BENCH_ROUNDS")?.unwrap_or(DEFAULT_ROUNDS),
            pin: std::env::var("SETTLE_BENCH_PIN").map_or(true, |value| value.trim() != "0"),
            workloads,
            statements: std::env::var("SETTLE_BENCH_STATEMENTS")
                .is_ok_and(|value| value.trim() == "1"),
        })
    }

    /// Requests (pairs) per round for the client count `CLIENTS[index]` (the configuration's
    /// total, split in equal rounds).
    fn per_round(&self, index: usize) -> usize {
        self.requests
            .unwrap_or(DEFAULT_REQUESTS[index])
            .div_ceil(self.rounds)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite",
            Store::Postgres => "PostgreSQL",
        }
    }
}

/// One configuration: a workload, a store, a client count, its own service process and fresh
/// store.
struct Config {
    workload: Workload,
    store: Store,
    clients: usize,
    per_round: usize,
    service: Service,
    /// `http://ADDR` of the service.
    base: String,
    /// The seed flow's accounts, one per client (none for `lnbtc`).
    accounts: Vec<AccountKey>,
    /// What each account was funded with, msat.
    funded_msat: u64,
    /// Successful settles, warm-up included (for the books' check).
    settled: usize,
    rounds: Vec<Round>,
}

impl Config {
    fn label(&self) -> String {
        format!(
            "{} {} {} clients",
            self.workload.name(),
            self.store.name(),
            self.clients
        )
    }
}

/// What one round measured.
struct Round {
    /// Timed units done (settles, or verify + settle pairs).
    done: usize,
    wall: Duration,
    /// Each unit's latency.
    latencies: Vec<Duration>,
    /// Each call's latency, by its place in the unit (a pair: verify, then settle).
    steps: Vec<Vec<Duration>>,
    service_cpu: Duration,
    postgres_cpu: Duration,
    loadgen_cpu: Duration,
    machine: MachineDelta,
    /// The service log's bytes written during the round (its statements, in a profile run).
    log_range: (u64, u64),
}

impl Round {
    fn per_second(&self) -> f64 {
        self.done as f64 / self.wall.as_secs_f64()
    }
}

/// Failures seen (counted, the first few kept to print).
#[derive(Default)]
struct Failures {
    count: usize,
    samples: Vec<String>,
}

impl Failures {
    fn add(&mut self, context: &str, errors: Vec<String>) {
        for error in errors {
            self.count += 1;
            if self.samples.len() < 10 {
                println!("FAILED request ({context}): {error}");
                self.samples.push(error);
            }
        }
    }
}

async fn run(settings: Settings, cores: usize, pinned: bool) -> Result<bool, BoxError> {
    let temp = tempfile::tempdir()?;
    let postgres_base = std::env::var("X402_FACILITATOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
    let admin = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&postgres_base)
        .await
    {
        Ok(pool) => Some(pool),
        Err(err) => {
            println!(
                "PostgreSQL at {postgres_base} is unreachable ({err}): the PostgreSQL rows are skipped"
            );
            None
        }
    };
    let mut schemas = Vec::new();
    let outcome = bench(
        &settings,
        cores,
        pinned,
        temp.path(),
        &postgres_base,
        admin.as_ref(),
        &mut schemas,
    )
    .await;
    // The schemas go whatever happened (the services are stopped by then).
    if let Some(admin) = &admin {
        for schema in &schemas {
            let dropped = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(admin)
                .await;
            if let Err(err) = dropped {
                eprintln!("could not drop schema {schema}: {err}");
            }
        }
        admin.close().await;
    }
    outcome
}

#[allow(clippy::too_many_lines)]
async fn bench(
    settings: &Settings,
    cores: usize,
    pinned: bool,
    dir: &Path,
    postgres_base: &str,
    admin: Option<&PgPool>,
    schemas: &mut Vec<String>,
) -> Result<bool, BoxError> {
    // The header: the command, the machine, the build, the stores' durability.
    println!(
        "x402-lightning-facilitator: POST /settle benchmark (regtest): exact on lnbtc, and the seed flow from prepaid accounts"
    );
    println!(
        "command: cargo bench -p x402-lightning-facilitator --bench settle  (SETTLE_BENCH_N={}, SETTLE_BENCH_ROUNDS={}, SETTLE_BENCH_WORKLOADS={}, SETTLE_BENCH_PIN={}, SETTLE_BENCH_STATEMENTS={})",
        settings
            .requests
            .map_or_else(|| "default".to_owned(), |n| n.to_string()),
        settings.rounds,
        settings
            .workloads
            .iter()
            .map(|workload| workload.name())
            .collect::<Vec<_>>()
            .join(","),
        u8::from(settings.pin),
        u8::from(settings.statements)
    );
    if settings.statements {
        println!(
            "PROFILE RUN: the services log every SQL statement (RUST_LOG=warn,sqlx::query=debug): \
             their throughput and latency here are slowed by the logging; see the statement tables"
        );
    }
    println!(
        "machine: {cores} cores (nproc), CPU {}, kernel {}, load average at start {}",
        cpu_model(),
        read_trimmed("/proc/sys/kernel/osrelease"),
        read_trimmed("/proc/loadavg")
    );
    println!(
        "build: {} (cargo bench: the `bench` profile, which inherits `release`); service = {BINARY}",
        if cfg!(debug_assertions) {
            "DEBUG ASSERTIONS ON: not an optimized build"
        } else {
            "optimized, no debug assertions"
        }
    );
    println!(
        "temp dir (SQLite files): {} on {}",
        dir.display(),
        filesystem_of(dir)
    );
    if pinned {
        println!(
            "cores: the service process and this load generator share the machine's {cores} cores: \
             each service pinned to core 0, the load generator (one tokio current-thread runtime, \
             one reqwest client) to core 1 (taskset); PostgreSQL's server processes are not \
             pinned and run on either core (SETTLE_BENCH_PIN=0 to unpin)"
        );
    } else {
        println!(
            "cores: the service process, this load generator (one tokio current-thread runtime, \
             one reqwest client) and PostgreSQL share the machine's {cores} cores, unpinned"
        );
    }
    let sqlite_pool = pool_size("src/store/sqlite.rs");
    println!(
        "SQLite durability: journal_mode=WAL, synchronous=FULL (an fsync of the WAL per commit, \
         one writer at a time, no group commit); service pool of {sqlite_pool} connections"
    );
    if let Some(admin) = admin {
        let mut shown = Vec::new();
        for setting in [
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "commit_delay",
            "full_page_writes",
        ] {
            let value: String = sqlx::query_scalar(AssertSqlSafe(format!("SHOW {setting}")))
                .fetch_one(admin)
                .await
                .unwrap_or_else(|err| format!("? ({err})"));
            shown.push(format!("{setting}={value}"));
        }
        let data_directory: Option<String> = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(admin)
            .await
            .ok();
        println!(
            "PostgreSQL durability ({}): {}; data directory {}; service pool of {} connections",
            redact_password(postgres_base),
            shown.join(", "),
            data_directory.as_deref().map_or_else(
                || "? (not readable)".to_owned(),
                |path| format!("{path} on {}", filesystem_of(Path::new(path)))
            ),
            pool_size("src/store/postgres.rs"),
        );
    }
    let totals: Vec<String> = CLIENTS
        .iter()
        .enumerate()
        .map(|(index, clients)| {
            format!(
                "{clients} client(s): {}",
                settings.per_round(index) * settings.rounds
            )
        })
        .collect();
    println!(
        "load: per configuration {} requests (pairs) in {} interleaved rounds, after {WARMUP} \
         warm-up requests (pairs); keep-alive connections",
        totals.join(", "),
        settings.rounds
    );
    println!("workloads:");
    for workload in &settings.workloads {
        println!("  {}", workload.title());
    }
    if settings.workloads.iter().any(|workload| workload.is_seed()) {
        println!(
            "seed flow: one account per client, funded once through POST /accounts/deposits + \
             POST /pay (simulated node) + GET /accounts/deposits/{{hash}}; before each round, \
             untimed, every invoice minted by POST /requirements (no descriptionHash, {AMOUNT_MSAT} \
             msat, maxTimeoutSeconds {SEED_EXPIRY_SECS}) and signed by its client's key; each \
             client pays its own invoices one at a time"
        );
    }

    // The disk's fsync, as the bound of one commit at a time.
    println!("\nfsync baseline ({BASELINE_COMMITS} commits each, one at a time, same disk):");
    let raw = fdatasync_baseline(dir)?;
    println!(
        "  raw file: append 64 bytes + fdatasync:           {:>7.0} /s  (median {:.2} ms, p99 {:.2} ms)",
        raw.per_second(),
        ms(raw.median()),
        ms(raw.p99())
    );
    let sqlite = sqlite_baseline(dir).await?;
    println!(
        "  SQLite WAL + synchronous=FULL, 1-row INSERT:     {:>7.0} commits/s  (median {:.2} ms, p99 {:.2} ms)",
        sqlite.per_second(),
        ms(sqlite.median()),
        ms(sqlite.p99())
    );
    if let Some(admin) = admin {
        let schema = format!("x402_bench_{}", random_hex());
        schemas.push(schema.clone());
        let postgres = postgres_baseline(admin, &schema).await?;
        println!(
            "  PostgreSQL, 1-row INSERT on one connection:      {:>7.0} commits/s  (median {:.2} ms, p99 {:.2} ms)",
            postgres.per_second(),
            ms(postgres.median()),
            ms(postgres.p99())
        );
    }

    // One service per configuration, each on a fresh store.
    let mut configs = Vec::new();
    let stores: &[Store] = if admin.is_some() {
        &[Store::Sqlite, Store::Postgres]
    } else {
        &[Store::Sqlite]
    };
    for &workload in &settings.workloads {
        for &store in stores {
            for (index, &clients) in CLIENTS.iter().enumerate() {
                let name = format!(
                    "{}-{}-{clients}",
                    workload.name(),
                    store.name().to_lowercase()
                );
                let database_url = match store {
                    Store::Sqlite => {
                        format!("sqlite://{}", dir.join(format!("{name}.db")).display())
                    }
                    Store::Postgres => {
                        let admin = admin.ok_or("no PostgreSQL")?;
                        let schema = format!("x402_bench_{}", random_hex());
                        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                            .execute(admin)
                            .await?;
                        schemas.push(schema.clone());
                        let separator = if postgres_base.contains('?') {
                            '&'
                        } else {
                            '?'
                        };
                        format!("{postgres_base}{separator}options=-c%20search_path%3D{schema}")
                    }
                };
                let rust_log = if settings.statements {
                    "warn,sqlx::query=debug"
                } else {
                    "warn"
                };
                let service =
                    Service::start(dir, &name, &database_url, rust_log, pinned.then_some(0))?;
                let base = format!("http://{}", service.addr);
                configs.push(Config {
                    workload,
                    store,
                    clients,
                    per_round: settings.per_round(index),
                    service,
                    base,
                    accounts: Vec::new(),
                    funded_msat: 0,
                    settled: 0,
                    rounds: Vec::new(),
                });
            }
        }
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let node = MockNode::random();
    let mut failures = Failures::default();

    // The seed flow's accounts: one per client, funded for every round and the warm-up, with
    // room to spare.
    for config in &mut configs {
        if config.workload.is_seed() {
            let per_client = config.per_round.div_ceil(config.clients) * settings.rounds
                + WARMUP.div_ceil(config.clients);
            config.funded_msat = AMOUNT_MSAT * (2 * per_client as u64 + 10);
            config.accounts =
                fund_accounts(&http, &config.base, config.clients, config.funded_msat).await?;
        }
    }

    for config in &mut configs {
        let batch = prepare(&http, &node, config, WARMUP).await?;
        let measured = execute(&http, config, batch).await;
        config.settled += measured.settled;
        failures.add(&format!("{}, warm-up", config.label()), measured.errors);
    }

    let self_pid = std::process::id();
    for round in 0..settings.rounds {
        for config in &mut configs {
            // Untimed: the round's proofs or invoices, fresh.
            let batch = prepare(&http, &node, config, config.per_round).await?;
            let log_start = config.service.log_len();
            let before = Snapshot::take(config.service.pid(), self_pid);
            let measured = execute(&http, config, batch).await;
            let after = Snapshot::take(config.service.pid(), self_pid);
            let log_end = config.service.log_len();
            config.settled += measured.settled;
            failures.add(
                &format!("{}, round {}", config.label(), round + 1),
                measured.errors,
            );
            config.rounds.push(Round {
                done: measured.latencies.len(),
                wall: measured.wall,
                latencies: measured.latencies,
                steps: measured.steps,
                service_cpu: after.service.since(&before.service),
                postgres_cpu: after.postgres.since(&before.postgres),
                loadgen_cpu: after.loadgen.since(&before.loadgen),
                machine: after.machine.since(&before.machine),
                log_range: (log_start, log_end),
            });
        }
    }

    report(&configs, settings, cores);
    if settings.statements {
        for config in &configs {
            statement_profile(config);
        }
    }

    // The books: every account's balance is what was deposited less what was settled, and
    // nothing is left held.
    let mut books_wrong = 0;
    if configs.iter().any(|config| config.workload.is_seed()) {
        println!("\nthe books after the run (signed GET /accounts/{SEED_NETWORK_ID}/{{account}}):");
    }
    for config in configs.iter().filter(|config| config.workload.is_seed()) {
        match audit(&http, config).await {
            Ok(line) => println!("  {:<32} {line}", config.label()),
            Err(err) => {
                books_wrong += 1;
                println!("  {:<32} WRONG: {err}", config.label());
            }
        }
    }

    // Stop the services (SIGTERM, so they close their pools), then look at their logs: beyond
    // the start-up warnings every service prints here (a simulated node, no API key).
    println!();
    for config in configs {
        let label = config.label();
        let (clean, log) = config.service.stop();
        let (expected, others): (Vec<&str>, Vec<&str>) = log
            .lines()
            .filter(|line| !line.contains("sqlx::query"))
            .partition(|line| {
                STARTUP_WARNINGS
                    .iter()
                    .any(|warning| line.contains(warning))
            });
        println!(
            "service {label}: {}, {} log line(s) at RUST_LOG=warn besides {} start-up warning(s) \
             (simulated node, no API key){}",
            if clean {
                "exited cleanly on SIGTERM"
            } else {
                "did NOT exit cleanly"
            },
            others.len(),
            expected.len(),
            if settings.statements {
                " and the statements"
            } else {
                ""
            }
        );
        for line in others.iter().take(5) {
            println!("    {line}");
        }
    }
    if failures.count > 0 {
        println!("{} request(s) failed", failures.count);
    }
    Ok(failures.count == 0 && books_wrong == 0)
}

/// Prints a table per workload, every round, and the CPU accounting.
fn report(configs: &[Config], settings: &Settings, cores: usize) {
    let rounds = settings.rounds;
    println!(
        "\nresults (rate: median of {rounds} rounds; p50/p99: over every request (pair) of the configuration; CPU: on-CPU time per request (pair))"
    );
    for &workload in &settings.workloads {
        let unit = workload.unit();
        let per = unit.trim_end_matches('s');
        let pair = workload == Workload::SeedPair;
        println!("\n{}", workload.title());
        let mut head = format!(
            "{:<11} {:>7} {:>8} {:>10} {:>8} {:>8}",
            "store",
            "clients",
            unit,
            format!("{unit}/s"),
            "p50 ms",
            "p99 ms"
        );
        let mut under = format!(
            "{:<11} {:>7} {:>8} {:>10} {:>8} {:>8}",
            "", "", "", "", "", ""
        );
        if pair {
            head.push_str(&format!(
                " {:>9} {:>9} {:>9} {:>9}",
                "verify", "verify", "settle", "settle"
            ));
            under.push_str(&format!(
                " {:>9} {:>9} {:>9} {:>9}",
                "p50 ms", "p99 ms", "p50 ms", "p99 ms"
            ));
        }
        head.push_str(&format!(
            " {:>12} {:>12} {:>12}",
            "service CPU", "PG CPU", "loadgen CPU"
        ));
        let per_unit = format!("µs/{per}");
        under.push_str(&format!(" {per_unit:>12} {per_unit:>12} {per_unit:>12}"));
        println!("{head}");
        println!("{under}");
        for config in configs.iter().filter(|config| config.workload == workload) {
            let done: usize = config.rounds.iter().map(|round| round.done).sum();
            let sorted = |pick: &dyn Fn(&Round) -> &[Duration]| {
                let mut all: Vec<Duration> = config
                    .rounds
                    .iter()
                    .flat_map(|round| pick(round).iter().copied())
                    .collect();
                all.sort_unstable();
                all
            };
            let latencies = sorted(&|round| &round.latencies);
            let rates: Vec<f64> = config.rounds.iter().map(Round::per_second).collect();
            let per_done = |cpu: fn(&Round) -> Duration| {
                let total: Duration = config.rounds.iter().map(cpu).sum();
                total.as_secs_f64() * 1e6 / done.max(1) as f64
            };
            let postgres = if config.store == Store::Postgres {
                format!("{:.0}", per_done(|round| round.postgres_cpu))
            } else {
                "-".to_owned()
            };
            let mut line = format!(
                "{:<11} {:>7} {:>8} {:>10.0} {:>8.2} {:>8.2}",
                config.store.name(),
                config.clients,
                done,
                median(&rates),
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.99)),
            );
            if pair {
                let verify = sorted(&|round| round.steps.first().map_or(&[], Vec::as_slice));
                let settle = sorted(&|round| round.steps.get(1).map_or(&[], Vec::as_slice));
                line.push_str(&format!(
                    " {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    ms(percentile(&verify, 0.50)),
                    ms(percentile(&verify, 0.99)),
                    ms(percentile(&settle, 0.50)),
                    ms(percentile(&settle, 0.99)),
                ));
            }
            line.push_str(&format!(
                " {:>12.0} {:>12} {:>12.0}",
                per_done(|round| round.service_cpu),
                postgres,
                per_done(|round| round.loadgen_cpu),
            ));
            println!("{line}");
        }
    }
    println!(
        "\n(CPU: on-CPU time from /proc schedstat; PG CPU = every `postgres` process of the \
         machine, other databases' work included; a pair is two requests)"
    );

    println!(
        "\nevery round, in run order within each round: rate/s [machine busy % / iowait % / steal % of {cores} cores, from /proc/stat 10 ms ticks]"
    );
    for config in configs {
        let rates: Vec<f64> = config.rounds.iter().map(Round::per_second).collect();
        let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let high = rates.iter().copied().fold(0.0, f64::max);
        let cells: Vec<String> = config
            .rounds
            .iter()
            .map(|round| {
                format!(
                    "{:.0} [{:.0}/{:.0}/{:.0}]",
                    round.per_second(),
                    round.machine.busy_percent(),
                    round.machine.iowait_percent(),
                    round.machine.steal_percent()
                )
            })
            .collect();
        println!(
            "  {:<11} {:<10} {:>2} clients: {}  (max/min {:.2})",
            config.workload.name(),
            config.store.name(),
            config.clients,
            cells.join("  "),
            high / low
        );
    }
}

/// In a profile run: the SQL statements the service ran during the configuration's timed
/// rounds, by statement, with sqlx's own measure of their time.
fn statement_profile(config: &Config) {
    let Ok(log) = fs::read(&config.service.log) else {
        println!("\n{}: no service log to profile", config.label());
        return;
    };
    let units: usize = config.rounds.iter().map(|round| round.done).sum();
    let per = config.workload.unit().trim_end_matches('s');
    let mut by_statement: HashMap<String, (usize, f64)> = HashMap::new();
    for round in &config.rounds {
        let (from, to) = round.log_range;
        let range = usize::try_from(from).unwrap_or(usize::MAX)..usize::try_from(to).unwrap_or(0);
        let Some(written) = log.get(range) else {
            continue;
        };
        for line in String::from_utf8_lossy(written).lines() {
            if let Some((statement, secs)) = parse_statement(line) {
                let entry = by_statement.entry(statement).or_default();
                entry.0 += 1;
                entry.1 += secs;
            }
        }
    }
    let count: usize = by_statement.values().map(|(count, _)| count).sum();
    let secs: f64 = by_statement.values().map(|(_, secs)| secs).sum();
    let units_f = units.max(1) as f64;
    println!(
        "\nSQL statements of {} over its timed rounds ({units} {}): {:.1} statements and {:.0} µs \
         of statement time per {per} (sqlx's measure: on SQLite the statement in its worker \
         thread, on PostgreSQL the round trip; the hand-off to SQLite's worker thread and the \
         pool wait are outside it)",
        config.label(),
        config.workload.unit(),
        count as f64 / units_f,
        secs * 1e6 / units_f
    );
    println!(
        "  {:>8} {:>9} {:>9} {:>6}  statement",
        format!("per {per}"),
        "mean µs",
        format!("µs/{per}"),
        "share"
    );
    let mut rows: Vec<(String, (usize, f64))> = by_statement.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    for (statement, (calls, total)) in rows.iter().take(20) {
        let shown: String = statement.chars().take(110).collect();
        println!(
            "  {:>8.2} {:>9.0} {:>9.0} {:>5.1}%  {shown}{}",
            *calls as f64 / units_f,
            total * 1e6 / *calls as f64,
            total * 1e6 / units_f,
            100.0 * total / secs.max(f64::MIN_POSITIVE),
            if statement.chars().count() > 110 {
                " …"
            } else {
                ""
            }
        );
    }
}

/// A `sqlx::query` debug line's statement (whitespace folded) and its `elapsed_secs`.
fn parse_statement(line: &str) -> Option<(String, f64)> {
    if !line.contains("sqlx::query") {
        return None;
    }
    let secs: f64 = line
        .split("elapsed_secs=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // The whole statement when it is longer than its summary (its first four words).
    let statement = match line.split("db.statement=\"").nth(1) {
        Some(rest) if !rest.starts_with('"') => {
            rest.split("\" rows_affected").next()?.replace("\\n", " ")
        }
        _ => line
            .split("summary=\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_owned(),
    };
    Some((
        statement.split_whitespace().collect::<Vec<_>>().join(" "),
        secs,
    ))
}

// ---------------------------------------------------------------------------------------------
// The load.

/// A round's work, prepared before the clock starts.
enum Batch {
    /// `lnbtc` settle bodies, taken by the clients from one shared queue.
    Shared(Vec<Vec<u8>>),
    /// Per client, its own jobs: its account's signed authorizations.
    PerClient(Vec<Vec<Job>>),
}

/// One timed unit of a client: its calls, one after the other.
struct Job {
    steps: Vec<Step>,
}

struct Step {
    call: Call,
    body: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Verify,
    Settle,
}

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::Verify => "/verify",
            Call::Settle => "/settle",
        }
    }
}

/// What a batch came to.
struct Measured {
    wall: Duration,
    latencies: Vec<Duration>,
    steps: Vec<Vec<Duration>>,
    errors: Vec<String>,
    /// Settles that answered `"success": true`.
    settled: usize,
}

/// `count` units of the configuration's workload, ready to send (untimed).
async fn prepare(
    http: &reqwest::Client,
    node: &MockNode,
    config: &Config,
    count: usize,
) -> Result<Batch, BoxError> {
    if !config.workload.is_seed() {
        return Ok(Batch::Shared(mint_bodies(node, count)));
    }
    let per_client = count.div_ceil(config.clients);
    let verify_first = config.workload == Workload::SeedSettle;
    // The clients' invoices are minted concurrently, one stream per client.
    let tasks: Vec<_> = config
        .accounts
        .iter()
        .map(|key| {
            let (http, base, key) = (http.clone(), config.base.clone(), key.clone());
            tokio::spawn(
                async move { seed_jobs(&http, &base, &key, per_client, verify_first).await },
            )
        })
        .collect();
    let mut lists = Vec::with_capacity(tasks.len());
    for task in tasks {
        lists.push(task.await.map_err(|err| format!("setup task: {err}"))??);
    }
    Ok(Batch::PerClient(lists))
}

/// Sends a batch and times it.
async fn execute(http: &reqwest::Client, config: &Config, batch: Batch) -> Measured {
    match batch {
        Batch::Shared(bodies) => {
            drive(
                http,
                &format!("{}/settle", config.base),
                bodies,
                config.clients,
            )
            .await
        }
        Batch::PerClient(lists) => drive_jobs(http, &config.base, lists).await,
    }
}

/// Settles every body, `clients` at a time, from one shared queue.
async fn drive(
    http: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> Measured {
    let count = bodies.len();
    let queue = Arc::new(Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (queue, http, url) = (Arc::clone(&queue), http.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count / clients + 1);
                let mut errors = Vec::new();
                loop {
                    let next = queue.lock().map(|mut queue| queue.next()).ok().flatten();
                    let Some(body) = next else { break };
                    let sent = Instant::now();
                    let outcome = post_once(&http, &url, body, Call::Settle).await;
                    latencies.push(sent.elapsed());
                    if let Err(err) = outcome {
                        errors.push(err);
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok((task_latencies, task_errors)) => {
                latencies.extend(task_latencies);
                errors.extend(task_errors);
            }
            Err(err) => errors.push(format!("client task failed: {err}")),
        }
    }
    let wall = started.elapsed();
    let settled = latencies.len().saturating_sub(errors.len());
    Measured {
        wall,
        latencies,
        steps: Vec::new(),
        errors,
        settled,
    }
}

/// Each client works through its own jobs, all clients at once.
async fn drive_jobs(http: &reqwest::Client, base: &str, lists: Vec<Vec<Job>>) -> Measured {
    let urls = Arc::new([format!("{base}/verify"), format!("{base}/settle")]);
    let count: usize = lists.iter().map(Vec::len).sum();
    let started = Instant::now();
    let tasks: Vec<_> = lists
        .into_iter()
        .map(|jobs| {
            let (http, urls) = (http.clone(), Arc::clone(&urls));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(jobs.len());
                let mut steps: Vec<Vec<Duration>> = Vec::new();
                let mut errors = Vec::new();
                let mut settled = 0;
                for job in jobs {
                    let sent = Instant::now();
                    for (index, step) in job.steps.into_iter().enumerate() {
                        let url = match step.call {
                            Call::Verify => &urls[0],
                            Call::Settle => &urls[1],
                        };
                        let called = Instant::now();
                        let outcome = post_once(&http, url, step.body, step.call).await;
                        if steps.len() <= index {
                            steps.push(Vec::with_capacity(latencies.capacity()));
                        }
                        steps[index].push(called.elapsed());
                        match outcome {
                            Ok(()) if step.call == Call::Settle => settled += 1,
                            Ok(()) => {}
                            Err(err) => {
                                // The rest of the job is skipped: the run is invalid anyway.
                                errors.push(format!("POST {}: {err}", step.call.path()));
                                break;
                            }
                        }
                    }
                    latencies.push(sent.elapsed());
                }
                (latencies, steps, errors, settled)
            })
        })
        .collect();
    let mut measured = Measured {
        wall: Duration::ZERO,
        latencies: Vec::with_capacity(count),
        steps: Vec::new(),
        errors: Vec::new(),
        settled: 0,
    };
    for task in tasks {
        match task.await {
            Ok((latencies, steps, errors, settled)) => {
                measured.latencies.extend(latencies);
                for (index, step) in steps.into_iter().enumerate() {
                    if measured.steps.len() <= index {
                        measured.steps.push(Vec::with_capacity(count));
                    }
                    measured.steps[index].extend(step);
                }
                measured.errors.extend(errors);
                measured.settled += settled;
            }
            Err(err) => measured.errors.push(format!("client task failed: {err}")),
        }
    }
    measured.wall = started.elapsed();
    measured
}

/// One `POST` of `/verify` or `/settle`: Ok when it answers 200 with `"isValid": true` or
/// `"success": true`.
async fn post_once(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    call: Call,
) -> Result<(), String> {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|err| format!("request: {err}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| format!("HTTP {status}, body: {err}"))?;
    let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", text()));
    }
    let answer: Value =
        serde_json::from_slice(&bytes).map_err(|err| format!("HTTP 200, not JSON ({err})"))?;
    let field = match call {
        Call::Verify => "isValid",
        Call::Settle => "success",
    };
    if answer[field] != Value::Bool(true) {
        return Err(format!("HTTP 200 without {field}: {}", text()));
    }
    Ok(())
}

/// `count` settle bodies, each a fresh invoice of `node` (10,000 msat, 300 s, created now, bound
/// to a random request hash) and its preimage, as tests/common `Proof::mint` and `settle_body`.
fn mint_bodies(node: &MockNode, count: usize) -> Vec<Vec<u8>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    (0..count).map(|_| mint_body(node, now)).collect()
}

fn mint_body(node: &MockNode, now: u64) -> Vec<u8> {
    let mut request_hash = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut request_hash);
    let minted = node
        .mint(&InvoiceSpec {
            network: NETWORK,
            amount_msat: AMOUNT_MSAT,
            description: String::new(),
            description_hash: Some(request_hash),
            created_at: Duration::from_secs(now),
            expiry: Duration::from_secs(300),
        })
        .expect("the mock node mints");
    let requirements = PaymentRequirements::lnbtc(
        NETWORK,
        AMOUNT_MSAT,
        node.pay_to().to_string(),
        300,
        LnbtcExtra {
            invoice: minted.invoice.to_string(),
            request_hash: request_hash.to_lower_hex_string(),
            request_binding_profile: "http:1".into(),
            request_binding_params: serde_json::json!({ "headers": [] }),
        },
    );
    let payload = PaymentPayload::lnbtc(
        None,
        requirements.clone(),
        minted.preimage.to_lower_hex_string(),
    );
    let payload = serde_json::to_value(payload).expect("serializes");
    serde_json::to_vec(&SettleRequest::new(payload, &requirements)).expect("serializes")
}

// ---------------------------------------------------------------------------------------------
// The seed flow's accounts and invoices.

/// A fresh random account key.
fn random_key() -> Result<AccountKey, BoxError> {
    let secret: [u8; 32] = rand::random();
    Ok(AccountKey::from_secret_key(
        bitcoin::secp256k1::SecretKey::from_slice(&secret)?,
    ))
}

/// `clients` new accounts, each funded with `amount_msat` on the seed network.
async fn fund_accounts(
    http: &reqwest::Client,
    base: &str,
    clients: usize,
    amount_msat: u64,
) -> Result<Vec<AccountKey>, BoxError> {
    let mut keys = Vec::with_capacity(clients);
    for _ in 0..clients {
        let key = random_key()?;
        fund(http, base, &key, amount_msat).await?;
        keys.push(key);
    }
    Ok(keys)
}

/// `count` jobs of `key`'s account: each a fresh recorded invoice (`POST /requirements`) and
/// the authorization paying it; verified here (held) when `verify_first`, so that the job is
/// the settle alone.
async fn seed_jobs(
    http: &reqwest::Client,
    base: &str,
    key: &AccountKey,
    count: usize,
    verify_first: bool,
) -> Result<Vec<Job>, BoxError> {
    let mut jobs = Vec::with_capacity(count);
    let verify_url = format!("{base}/verify");
    for _ in 0..count {
        let requirements = mint_requirements(http, base).await?;
        let body = serde_json::to_vec(&VerifyRequest::new(
            key.authorize(&requirements)?,
            requirements,
        ))?;
        let steps = if verify_first {
            post_once(http, &verify_url, body.clone(), Call::Verify)
                .await
                .map_err(|err| format!("setup POST /verify: {err}"))?;
            vec![Step {
                call: Call::Settle,
                body,
            }]
        } else {
            vec![
                Step {
                    call: Call::Verify,
                    body: body.clone(),
                },
                Step {
                    call: Call::Settle,
                    body,
                },
            ]
        };
        jobs.push(Job { steps });
    }
    Ok(jobs)
}

/// Fresh requirements from the service (`POST /requirements`, no `descriptionHash`): a
/// recorded invoice of its node, payable by the seed flow.
async fn mint_requirements(
    http: &reqwest::Client,
    base: &str,
) -> Result<SeedRequirements, BoxError> {
    let mut request = RequirementsRequest::new(NETWORK, AMOUNT_MSAT, "http://127.0.0.1/bench");
    request.description = "settle bench".into();
    request.mime_type = "application/json".into();
    request.max_timeout_seconds = SEED_EXPIRY_SECS;
    let answer = expect_json(
        http.post(format!("{base}/requirements")).json(&request),
        200,
        "POST /requirements",
    )
    .await?;
    Ok(serde_json::from_value(answer)?)
}

/// Checks the books of a seed configuration: each account holds its deposit less what was
/// settled from it, and nothing is held any more.
async fn audit(http: &reqwest::Client, config: &Config) -> Result<String, BoxError> {
    let mut balance_sum: u64 = 0;
    for key in &config.accounts {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let account = expect_json(
            http.get(format!(
                "{}/accounts/{SEED_NETWORK_ID}/{}",
                config.base,
                key.account()
            ))
            .header(
                "X402-Account-Signature",
                key.account_read_signature(SEED_NETWORK_ID, now),
            ),
            200,
            "GET /accounts/{network}/{account}",
        )
        .await?;
        let amount = |field: &str| -> Result<u64, BoxError> {
            Ok(account[field]
                .as_str()
                .ok_or_else(|| format!("no {field}: {account}"))?
                .parse()?)
        };
        if amount("held")? != 0 {
            return Err(format!("{} msat still held: {account}", amount("held")?).into());
        }
        balance_sum += amount("balance")?;
    }
    let funded = config.funded_msat * config.accounts.len() as u64;
    let expected = funded - AMOUNT_MSAT * config.settled as u64;
    if balance_sum != expected {
        return Err(format!(
            "balances sum to {balance_sum} msat, expected {funded} deposited - {} settles x \
             {AMOUNT_MSAT} = {expected}",
            config.settled
        )
        .into());
    }
    Ok(format!(
        "{} accounts: {balance_sum} msat = {funded} deposited - {} settles x {AMOUNT_MSAT} msat, \
         0 held",
        config.accounts.len(),
        config.settled
    ))
}

// ---------------------------------------------------------------------------------------------
// The service process.

// ---------------------------------------------------------------------------------------------
// The fsync baselines.

/// Latencies of one-at-a-time commits, and their total time.
struct Baseline {
    total: Duration,
    latencies: Vec<Duration>,
}

impl Baseline {
    fn new(total: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self { total, latencies }
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.total.as_secs_f64()
    }

    fn median(&self) -> Duration {
        percentile(&self.latencies, 0.5)
    }

    fn p99(&self) -> Duration {
        percentile(&self.latencies, 0.99)
    }
}

/// Appends 64 bytes to a file and `fdatasync`s it, `BASELINE_COMMITS` times.
fn fdatasync_baseline(dir: &Path) -> Result<Baseline, BoxError> {
    let path = dir.join("fsync-baseline.bin");
    let mut file = File::create(&path)?;
    let record = [0x5au8; 64];
    let mut latencies = Vec::with_capacity(BASELINE_COMMITS);
    let started = Instant::now();
    for _ in 0..BASELINE_COMMITS {
        let commit = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        latencies.push(commit.elapsed());
    }
    let total = started.elapsed();
    drop(file);
    fs::remove_file(&path)?;
    Ok(Baseline::new(total, latencies))
}

/// `BASELINE_COMMITS` single-row INSERT commits into a scratch SQLite file with the service's
/// pragmas (WAL, synchronous=FULL), on one connection.
async fn sqlite_baseline(dir: &Path) -> Result<Baseline, BoxError> {
    let path = dir.join("fsync-baseline.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query("CREATE TABLE scratch (k TEXT PRIMARY KEY, a BIGINT NOT NULL, b BIGINT NOT NULL)")
        .execute(&pool)
        .await?;
    let mut latencies = Vec::with_capacity(BASELINE_COMMITS);
    let started = Instant::now();
    for index in 0..BASELINE_COMMITS {
        let commit = Instant::now();
        sqlx::query("INSERT INTO scratch (k, a, b) VALUES ($1, $2, $3)")
            .bind(format!("{NETWORK_ID}:{index:064x}"))
            .bind(1_i64)
            .bind(2_i64)
            .execute(&pool)
            .await?;
        latencies.push(commit.elapsed());
    }
    let total = started.elapsed();
    pool.close().await;
    Ok(Baseline::new(total, latencies))
}

/// `BASELINE_COMMITS` single-row INSERT commits into a table of a scratch schema, on one
/// connection.
async fn postgres_baseline(admin: &PgPool, schema: &str) -> Result<Baseline, BoxError> {
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {schema}.scratch (k TEXT PRIMARY KEY, a BIGINT NOT NULL, b BIGINT NOT NULL)"
    )))
    .execute(admin)
    .await?;
    let insert = format!("INSERT INTO {schema}.scratch (k, a, b) VALUES ($1, $2, $3)");
    let mut latencies = Vec::with_capacity(BASELINE_COMMITS);
    let started = Instant::now();
    for index in 0..BASELINE_COMMITS {
        let commit = Instant::now();
        sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(format!("{NETWORK_ID}:{index:064x}"))
            .bind(1_i64)
            .bind(2_i64)
            .execute(admin)
            .await?;
        latencies.push(commit.elapsed());
    }
    Ok(Baseline::new(started.elapsed(), latencies))
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc.

/// On-CPU nanoseconds of threads, by (pid, tid).
#[derive(Default)]
struct Threads(HashMap<(u32, u32), u64>);

impl Threads {
    fn of(pids: impl IntoIterator<Item = u32>) -> Self {
        let mut threads = HashMap::new();
        for pid in pids {
            let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse().ok()) else {
                    continue;
                };
                if let Some(nanos) = thread_nanos(&task.path()) {
                    threads.insert((pid, tid), nanos);
                }
            }
        }
        Self(threads)
    }

    /// CPU time used since `before` (threads born since count whole; threads gone are lost).
    fn since(&self, before: &Threads) -> Duration {
        let nanos = self
            .0
            .iter()
            .map(|(key, now)| now.saturating_sub(before.0.get(key).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(nanos)
    }
}

/// A thread's on-CPU time: `schedstat` (nanoseconds), or `stat`'s user + system ticks.
fn thread_nanos(task: &Path) -> Option<u64> {
    if let Ok(schedstat) = fs::read_to_string(task.join("schedstat")) {
        return schedstat.split_whitespace().next()?.parse().ok();
    }
    let stat = fs::read_to_string(task.join("stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100.
    Some(ticks * 10_000_000)
}

/// The pids of the machine's PostgreSQL server processes.
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .collect()
}

/// The machine-wide CPU ticks of `/proc/stat`'s `cpu` line.
#[derive(Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    iowait: u64,
    steal: u64,
    total: u64,
}

impl MachineTicks {
    fn read() -> Self {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
            return Self::default();
        };
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        Self {
            busy: field(0) + field(1) + field(2) + field(5) + field(6),
            iowait: field(4),
            steal: field(7),
            total: (0..8).map(field).sum(),
        }
    }

    fn since(&self, before: &MachineTicks) -> MachineDelta {
        MachineDelta(MachineTicks {
            busy: self.busy.saturating_sub(before.busy),
            iowait: self.iowait.saturating_sub(before.iowait),
            steal: self.steal.saturating_sub(before.steal),
            total: self.total.saturating_sub(before.total),
        })
    }
}

/// The machine's CPU shares over a round.
struct MachineDelta(MachineTicks);

impl MachineDelta {
    fn share(&self, ticks: u64) -> f64 {
        100.0 * ticks as f64 / self.0.total.max(1) as f64
    }

    fn busy_percent(&self) -> f64 {
        self.share(self.0.busy)
    }

    fn iowait_percent(&self) -> f64 {
        self.share(self.0.iowait)
    }

    fn steal_percent(&self) -> f64 {
        self.share(self.0.steal)
    }
}

/// Everything counted around a round.
struct Snapshot {
    service: Threads,
    postgres: Threads,
    loadgen: Threads,
    machine: MachineTicks,
}

impl Snapshot {
    fn take(service: u32, loadgen: u32) -> Self {
        Self {
            service: Threads::of([service]),
            postgres: Threads::of(postgres_pids()),
            loadgen: Threads::of([loadgen]),
            machine: MachineTicks::read(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes.to_lower_hex_string()
}

/// The `max_connections(N)` of a store's source file, as the service was built with it.
fn pool_size(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    fs::read_to_string(path)
        .ok()
        .and_then(|source| {
            let after = &source[source.find(".max_connections(")? + ".max_connections(".len()..];
            Some(after[..after.find(')')?].trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}
