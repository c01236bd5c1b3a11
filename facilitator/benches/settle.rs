//! `POST /settle` throughput and latency, against the real release binary, for both replay
//! stores (a SQLite file, a PostgreSQL schema) at 1 and 32 concurrent clients.
//!
//! `cargo bench -p x402-lightning-facilitator --bench settle`
//!
//! - One service process per configuration (store × clients), each on a fresh store: a new
//!   SQLite file in a temporary directory on the real disk, or a new schema in the database of
//!   `X402_FACILITATOR_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`;
//!   the PostgreSQL rows are skipped when it is unreachable), dropped at the end.
//! - Every proof (a fresh invoice of a mock node, bound to a random request hash, and its
//!   preimage) is minted and its body serialized before the clock starts, and settled exactly
//!   once; every answer must be 200 `"success": true`, or the run is invalid (exit status 1).
//! - The configurations run interleaved in rounds (BENCHMARKING.md): settles/s is the median of
//!   the rounds, every round is printed, p50/p99 are over every settle of the configuration.
//!   50 warm-up settles per configuration are left out of the figures.
//! - Beside throughput: CPU time per settle of the service process, of the PostgreSQL server
//!   processes and of the load generator (`/proc`), the machine's busy/iowait/steal shares, and
//!   a raw fsync-per-commit baseline of the disk.
//!
//! Environment: `SETTLE_BENCH_N` (settles per configuration; default 1,000 at 1 client and 4,000
//! at 32), `SETTLE_BENCH_ROUNDS` (default 5), `SETTLE_BENCH_PIN=0` (do not pin the service to
//! core 0 and the load generator to core 1).

use std::collections::HashMap;
use std::error::Error;
use std::fs::{self, File};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, mpsc};
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
use x402_lightning_facilitator::store::redact_password;

type BoxError = Box<dyn Error + Send + Sync>;

/// The service binary, built by cargo (release, the `bench` profile) for the benchmark.
const BINARY: &str = env!("CARGO_BIN_EXE_x402-lightning-facilitator");
/// Regtest: the network the proofs are minted on and the service settles.
const NETWORK: Network = Network::Regtest;
const NETWORK_ID: &str = "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Concurrent clients measured.
const CLIENTS: [usize; 2] = [1, 32];
/// Settles per configuration by default, by client count.
const DEFAULT_SETTLES: [usize; 2] = [1_000, 4_000];
const DEFAULT_ROUNDS: usize = 5;
/// Warm-up settles per configuration, before its first round, left out of the figures.
const WARMUP: usize = 50;
/// Commits of the fsync baseline.
const BASELINE_COMMITS: usize = 200;
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the service may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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
    let pinned = settings.pin && cores >= 2 && pin_this_process(1);
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
            println!("\nINVALID RUN: some settles did not answer 200 \"success\": true (above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("settle bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The benchmark's knobs, from the environment.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// Settles per configuration (`SETTLE_BENCH_N`), or the defaults.
    settles: Option<usize>,
    rounds: usize,
    pin: bool,
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
        Ok(Self {
            settles: number("SETTLE_BENCH_N")?,
            rounds: number("SETTLE_BENCH_ROUNDS")?.unwrap_or(DEFAULT_ROUNDS),
            pin: std::env::var("SETTLE_BENCH_PIN").map_or(true, |value| value.trim() != "0"),
        })
    }

    /// Settles per round for the client count `CLIENTS[index]` (the configuration's total,
    /// split in equal rounds).
    fn per_round(&self, index: usize) -> usize {
        self.settles
            .unwrap_or(DEFAULT_SETTLES[index])
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

/// One configuration: a store, a client count, its own service process and fresh store.
struct Config {
    store: Store,
    clients: usize,
    per_round: usize,
    service: Service,
    url: String,
    rounds: Vec<Round>,
}

/// What one round measured.
struct Round {
    settles: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    service_cpu: Duration,
    postgres_cpu: Duration,
    loadgen_cpu: Duration,
    machine: MachineDelta,
}

impl Round {
    fn per_second(&self) -> f64 {
        self.settles as f64 / self.wall.as_secs_f64()
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
                println!("FAILED settle ({context}): {error}");
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
        settings,
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
    settings: Settings,
    cores: usize,
    pinned: bool,
    dir: &Path,
    postgres_base: &str,
    admin: Option<&PgPool>,
    schemas: &mut Vec<String>,
) -> Result<bool, BoxError> {
    // The header: the machine, the build, the stores' durability.
    println!("x402-lightning-facilitator: POST /settle benchmark (exact on lnbtc, regtest)");
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
                "{clients} client(s): {} settles",
                settings.per_round(index) * settings.rounds
            )
        })
        .collect();
    println!(
        "load: per configuration {} in {} interleaved rounds, after {WARMUP} warm-up settles; \
         every proof minted and serialized before timing, settled once; keep-alive connections",
        totals.join(", "),
        settings.rounds
    );

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
    for &store in stores {
        for (index, &clients) in CLIENTS.iter().enumerate() {
            let database_url = match store {
                Store::Sqlite => format!(
                    "sqlite://{}",
                    dir.join(format!("replay-{clients}.db")).display()
                ),
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
            let name = format!("{}-{clients}", store.name().to_lowercase());
            let service = Service::start(dir, &name, &database_url, pinned.then_some(0))?;
            let url = format!("http://{}/settle", service.addr);
            configs.push(Config {
                store,
                clients,
                per_round: settings.per_round(index),
                service,
                url,
                rounds: Vec::new(),
            });
        }
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let node = MockNode::random();
    let mut failures = Failures::default();

    for config in &configs {
        let bodies = mint_bodies(&node, WARMUP);
        let (_, _, errors) = drive(&http, &config.url, bodies, config.clients).await;
        failures.add(
            &format!(
                "{} {} clients, warm-up",
                config.store.name(),
                config.clients
            ),
            errors,
        );
    }

    let self_pid = std::process::id();
    for round in 0..settings.rounds {
        for config in &mut configs {
            // Untimed: the round's proofs, fresh (their invoices are valid for 300 s).
            let bodies = mint_bodies(&node, config.per_round);
            let before = Snapshot::take(config.service.pid(), self_pid);
            let (wall, latencies, errors) = drive(&http, &config.url, bodies, config.clients).await;
            let after = Snapshot::take(config.service.pid(), self_pid);
            failures.add(
                &format!(
                    "{} {} clients, round {}",
                    config.store.name(),
                    config.clients,
                    round + 1
                ),
                errors,
            );
            config.rounds.push(Round {
                settles: latencies.len(),
                wall,
                latencies,
                service_cpu: after.service.since(&before.service),
                postgres_cpu: after.postgres.since(&before.postgres),
                loadgen_cpu: after.loadgen.since(&before.loadgen),
                machine: after.machine.since(&before.machine),
            });
        }
    }

    report(&configs, settings.rounds, cores);

    // Stop the services (SIGTERM, so they close their pools), then look at their logs.
    println!();
    for config in configs {
        let label = format!("{} {} clients", config.store.name(), config.clients);
        let (clean, log) = config.service.stop();
        let lines: Vec<&str> = log.lines().collect();
        println!(
            "service {label}: {}, {} log line(s) at RUST_LOG=warn",
            if clean {
                "exited cleanly on SIGTERM"
            } else {
                "did NOT exit cleanly"
            },
            lines.len()
        );
        for line in lines.iter().take(5) {
            println!("    {line}");
        }
    }
    if failures.count > 0 {
        println!("{} settle(s) failed", failures.count);
    }
    Ok(failures.count == 0)
}

/// Prints the table, every round, and the CPU accounting.
fn report(configs: &[Config], rounds: usize, cores: usize) {
    println!(
        "\nresults (settles/s: median of {rounds} rounds; p50/p99: over every settle of the configuration)"
    );
    println!(
        "{:<11} {:>7} {:>8} {:>10} {:>8} {:>8} {:>12} {:>12} {:>12}",
        "store",
        "clients",
        "settles",
        "settles/s",
        "p50 ms",
        "p99 ms",
        "service CPU",
        "PG CPU",
        "loadgen CPU"
    );
    println!(
        "{:<11} {:>7} {:>8} {:>10} {:>8} {:>8} {:>12} {:>12} {:>12}",
        "", "", "", "", "", "", "µs/settle", "µs/settle", "µs/settle"
    );
    for config in configs {
        let settles: usize = config.rounds.iter().map(|round| round.settles).sum();
        let mut latencies: Vec<Duration> = config
            .rounds
            .iter()
            .flat_map(|round| round.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let rates: Vec<f64> = config.rounds.iter().map(Round::per_second).collect();
        let per_settle = |cpu: fn(&Round) -> Duration| {
            let total: Duration = config.rounds.iter().map(cpu).sum();
            total.as_secs_f64() * 1e6 / settles.max(1) as f64
        };
        let postgres = if config.store == Store::Postgres {
            format!("{:.0}", per_settle(|round| round.postgres_cpu))
        } else {
            "-".to_owned()
        };
        println!(
            "{:<11} {:>7} {:>8} {:>10.0} {:>8.2} {:>8.2} {:>12.0} {:>12} {:>12.0}",
            config.store.name(),
            config.clients,
            settles,
            median(&rates),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            per_settle(|round| round.service_cpu),
            postgres,
            per_settle(|round| round.loadgen_cpu),
        );
    }
    println!(
        "(CPU: on-CPU time from /proc schedstat, per settle; PG CPU = every `postgres` process of \
         the machine, other databases' work included)"
    );

    println!(
        "\nevery round, in run order within each round: settles/s [machine busy % / iowait % / steal % of {cores} cores, from /proc/stat 10 ms ticks]"
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
            "  {:<10} {:>2} clients: {}  (max/min {:.2})",
            config.store.name(),
            config.clients,
            cells.join("  "),
            high / low
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The load.

/// Settles every body, `clients` at a time, from one shared queue; returns the wall time, each
/// settle's latency and the failures.
async fn drive(
    http: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> (Duration, Vec<Duration>, Vec<String>) {
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
                    let outcome = settle_once(&http, &url, body).await;
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
    (started.elapsed(), latencies, errors)
}

/// One `POST /settle`: Ok when it answers 200 with `"success": true`.
async fn settle_once(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), String> {
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
    if answer["success"] != Value::Bool(true) {
        return Err(format!("HTTP 200 without success: {}", text()));
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
            amount_msat: 10_000,
            description: String::new(),
            description_hash: Some(request_hash),
            created_at: Duration::from_secs(now),
            expiry: Duration::from_secs(300),
        })
        .expect("the mock node mints");
    let requirements = PaymentRequirements::lnbtc(
        NETWORK,
        10_000,
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
// The service process.

/// A running service; killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Service {
    /// Starts the binary on `database_url` (an environment without inherited
    /// `X402_FACILITATOR_*` variables, a free loopback port, regtest), pinned to `core` if
    /// given, and waits for its `listening on http://ADDR` line.
    fn start(
        dir: &Path,
        name: &str,
        database_url: &str,
        core: Option<usize>,
    ) -> Result<Self, BoxError> {
        let log = dir.join(format!("service-{name}.log"));
        let stderr = File::create(&log)?;
        let mut command = match core {
            // taskset execs the binary: the child's pid is the service's.
            Some(core) => {
                let mut command = Command::new("taskset");
                command.args(["-c", &core.to_string(), BINARY]);
                command
            }
            None => Command::new(BINARY),
        };
        for (variable, _) in std::env::vars() {
            if variable.starts_with("X402_FACILITATOR_") {
                command.env_remove(variable);
            }
        }
        command
            .env("X402_FACILITATOR_BIND", "127.0.0.1:0")
            .env("X402_FACILITATOR_NETWORKS", NETWORK_ID)
            .env("X402_FACILITATOR_DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("stdout is piped")?;
        let (lines, line) = mpsc::channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines() {
                let Ok(text) = text else { break };
                if lines.send(text).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match line.recv_timeout(left) {
                Ok(text) => {
                    if let Some(addr) = text.strip_prefix("listening on http://") {
                        break addr.trim().parse()?;
                    }
                }
                Err(err) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the service ({name}) did not print its address ({err}); its log:\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    )
                    .into());
                }
            }
        };
        Ok(Self { child, addr, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after); returns whether it exited cleanly, and
    /// its log.
    fn stop(mut self) -> (bool, String) {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut clean = false;
        while signalled && Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    clean = status.success();
                    break;
                }
                // Polling the exit: the only sleep of the benchmark, after the measurements.
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        (clean, log)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Pins this process (its only thread so far: every later one inherits it) to `core`.
fn pin_this_process(core: usize) -> bool {
    let pinned = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !pinned {
        println!("note: taskset could not pin the load generator: running unpinned");
    }
    pinned
}

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

/// The nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes.to_lower_hex_string()
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|_| "?".to_owned(), |text| text.trim().to_owned())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// The device, filesystem type and mount options `path` lives on (`/proc/self/mounts`).
fn filesystem_of(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [device, mount, kind, options, ..] if path.starts_with(mount) => Some((
                    mount.len(),
                    format!("{device} ({kind}, {options}, mounted on {mount})"),
                )),
                _ => None,
            }
        })
        // The longest mount point wins; among equals, the last mounted.
        .fold(
            None,
            |best: Option<(usize, String)>, candidate| match best {
                Some(best) if best.0 > candidate.0 => Some(best),
                _ => Some(candidate),
            },
        )
        .map_or_else(|| "? (not in /proc/self/mounts)".to_owned(), |(_, fs)| fs)
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
