//! The seed flow (x402 v1, `PROTOCOL.md` Part 3) end to end at one client: an axum app behind
//! the payment layer (`X402Layer`, `Flows::V1`, in this process) paying through the release
//! service binary (SQLite, simulated node) from a prepaid account.
//!
//! `cargo bench -p x402-lightning-facilitator --bench seed_end_to_end`
//!
//! - One service process on a fresh SQLite file in a temporary directory (real disk,
//!   `synchronous=FULL`), pinned to core 0; this process (one tokio current-thread runtime: the
//!   app with the layer, the layer's facilitator client and the paying client) pinned to core 1.
//! - One account, funded once through the service's deposits (`POST /accounts/deposits`,
//!   `POST /pay` on the simulated node, `GET /accounts/deposits/{hash}`).
//! - A paid request, one at a time: `GET /weather` → 402 (the layer asks `POST /requirements`
//!   for a fresh invoice) → the client signs the invoice with its account key
//!   (`AccountKey::payment_header`) → `GET /weather` with `X-PAYMENT` → 200 with
//!   `X-PAYMENT-RESPONSE` (the layer: pre-checks → `POST /verify` → handler → `POST /settle`).
//!   Timed whole (the 402 round trip included) and by part.
//! - Beside it, interleaved in the same rounds (BENCHMARKING.md): the same client calling the
//!   service directly (`POST /requirements`, `/verify`, `/settle`: the layer's share of the
//!   time is the difference), and a free route through the layer (the HTTP floor).
//! - Every paid answer must be 200 with a successful `X-PAYMENT-RESPONSE`, every direct call
//!   200 valid/successful, and at the end the account's balance must be its deposit less every
//!   settle, nothing held; otherwise the run is invalid (exit status 1).
//!
//! Environment: `SEED_E2E_N` (paid requests measured, and as many direct triples and free
//! requests; default 2,000), `SEED_E2E_WARMUP` (default 200 of each), `SEED_E2E_ROUNDS`
//! (default 5), `SEED_E2E_PIN=0` (no pinning), `SEED_E2E_DB_DIR` (where the SQLite file goes;
//! default the system's temporary directory: `/dev/shm`, a tmpfs, shows what the paid request
//! would cost if commits needed no fsync).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use x402_lightning::types::{
    PaymentRequired, PaymentRequirements, RequirementsRequest, VerifyRequest,
};
use x402_lightning::v1::AccountKey;
use x402_lightning::v1::header::{X_PAYMENT, X_PAYMENT_RESPONSE, decode_payment_response_header};
use x402_lightning::{Flows, HttpFacilitator, Network, Price, PriceTag, X402Layer};

#[path = "common/mod.rs"]
mod common;

use common::{
    BINARY, BoxError, SEED_NETWORK_ID, Service, cpu_model, expect_json, filesystem_of, fund, ms,
    percentile, pin_this_process, read_trimmed,
};

const NETWORK: Network = Network::Regtest;
/// The price of `GET /weather`, msat.
const PRICE_MSAT: u64 = 10_000;
const DEFAULT_REQUESTS: usize = 2_000;
const DEFAULT_WARMUP: usize = 200;
const DEFAULT_ROUNDS: usize = 5;
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `X-PAYMENT-RESPONSE` decoded.
const MAX_HEADER_BYTES: usize = 8 * 1024;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("seed_end_to_end bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Pin before the runtime (and any thread) exists: every later thread inherits the mask.
    let pinned = settings.pin && cores >= 2 && pin_this_process(1, "this process");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("seed_end_to_end bench: tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&settings, cores, pinned)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nINVALID RUN: some requests failed or the books do not add up (above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("seed_end_to_end bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The benchmark's knobs, from the environment.
struct Settings {
    requests: usize,
    warmup: usize,
    rounds: usize,
    pin: bool,
    /// The directory the SQLite file (and the service's log) is created in.
    db_dir: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        let number = |name: &str, default: usize, least: usize| -> Result<usize, BoxError> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => {
                    let value: usize = text
                        .trim()
                        .parse()
                        .map_err(|err| format!("{name}={text}: {err}"))?;
                    if value < least {
                        return Err(format!("{name} must be at least {least}").into());
                    }
                    Ok(value)
                }
                _ => Ok(default),
            }
        };
        Ok(Self {
            requests: number("SEED_E2E_N", DEFAULT_REQUESTS, 1)?,
            warmup: number("SEED_E2E_WARMUP", DEFAULT_WARMUP, 0)?,
            rounds: number("SEED_E2E_ROUNDS", DEFAULT_ROUNDS, 1)?,
            pin: std::env::var("SEED_E2E_PIN").map_or(true, |value| value.trim() != "0"),
            db_dir: std::env::var_os("SEED_E2E_DB_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
        })
    }

    fn per_round(&self) -> usize {
        self.requests.div_ceil(self.rounds)
    }
}

/// The timed parts, each a list of latencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    /// A paid request whole: the 402 round trip, signing, the paid request.
    Cycle,
    /// `GET /weather` without payment → 402 (the layer mints through `POST /requirements`).
    Challenge,
    /// The client signs the invoice and encodes `X-PAYMENT`.
    Sign,
    /// `GET /weather` with `X-PAYMENT` → 200 (verify → handler → settle).
    Paid,
    /// Direct: `POST /requirements`.
    Requirements,
    /// Direct: `POST /verify`.
    Verify,
    /// Direct: `POST /settle`.
    Settle,
    /// Direct: `/verify` + `/settle` of one invoice.
    VerifySettle,
    /// `GET /health` through the layer: free.
    Free,
}

/// What the rounds measured: latencies by part, and CPU time by kind of work.
#[derive(Default)]
struct Samples {
    latencies: HashMap<Part, Vec<Duration>>,
    /// Per round, the paid request's p50 (ms) and the cycle's p50.
    round_p50: Vec<(f64, f64)>,
    /// Per kind (`cycle`, `direct`, `free`): units, wall time, service CPU, bench CPU.
    cpu: HashMap<&'static str, (usize, Duration, Duration, Duration)>,
}

impl Samples {
    fn push(&mut self, part: Part, latency: Duration) {
        self.latencies.entry(part).or_default().push(latency);
    }

    fn sorted(&self, part: Part) -> Vec<Duration> {
        let mut all = self.latencies.get(&part).cloned().unwrap_or_default();
        all.sort_unstable();
        all
    }
}

/// Everything a paid request needs.
struct Client {
    http: reqwest::Client,
    app: String,
    service: String,
    key: AccountKey,
}

async fn run(settings: &Settings, cores: usize, pinned: bool) -> Result<bool, BoxError> {
    let temp = match &settings.db_dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    println!(
        "x402-lightning: the seed flow end to end (x402 v1, prepaid account): axum + X402Layer (Flows::V1) -> facilitator service (SQLite)"
    );
    println!(
        "command: cargo bench -p x402-lightning-facilitator --bench seed_end_to_end  (SEED_E2E_N={}, SEED_E2E_WARMUP={}, SEED_E2E_ROUNDS={}, SEED_E2E_PIN={}, SEED_E2E_DB_DIR={})",
        settings.requests,
        settings.warmup,
        settings.rounds,
        u8::from(settings.pin),
        settings
            .db_dir
            .as_deref()
            .map_or_else(|| "default".into(), Path::to_string_lossy)
    );
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
        "store: SQLite (WAL, synchronous=FULL) in {} on {}",
        temp.path().display(),
        filesystem_of(temp.path())
    );
    if pinned {
        println!(
            "cores: the service pinned to core 0; this process (one tokio current-thread runtime: \
             the axum app with the layer, the layer's HttpFacilitator, the paying reqwest client) \
             pinned to core 1 (taskset; SEED_E2E_PIN=0 to unpin)"
        );
    } else {
        println!(
            "cores: unpinned; the service and this process (one tokio current-thread runtime: the \
             axum app with the layer, the layer's HttpFacilitator, the paying reqwest client) share \
             the machine's {cores} cores"
        );
    }
    println!(
        "load: {} paid requests at 1 client in {} interleaved rounds, after {} warm-up; as many \
         direct /requirements + /verify + /settle triples and free requests, interleaved; \
         keep-alive connections everywhere",
        settings.per_round() * settings.rounds,
        settings.rounds,
        settings.warmup
    );

    let database_url = format!("sqlite://{}", temp.path().join("e2e.db").display());
    let service = Service::start(
        temp.path(),
        "seed-e2e",
        &database_url,
        "warn",
        pinned.then_some(0),
    )?;
    let service_url = format!("http://{}", service.addr);
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let key =
        AccountKey::from_secret_key(bitcoin::secp256k1::SecretKey::from_slice(&rand::random::<
            [u8; 32],
        >())?);
    // Every paid request and every direct triple settles once; room to spare.
    let settles = 2 * (settings.warmup + settings.per_round() * settings.rounds);
    let funded_msat = PRICE_MSAT * (settles as u64 + 10);
    fund(&http, &service_url, &key, funded_msat).await?;

    // The resource server: the demo's shape, seed flow only.
    let facilitator = HttpFacilitator::builder(&service_url)
        .timeout(Duration::from_secs(10))
        .build()?;
    let payments = X402Layer::builder(facilitator, NETWORK)
        .flows(Flows::V1)
        .route(
            "GET /weather",
            PriceTag::fixed(Price::msat(PRICE_MSAT))
                .description("Current weather")
                .mime_type("application/json"),
        )
        .build()?;
    payments.check_facilitator().await?;
    let router = Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route(
            "/weather",
            get(|| async {
                Json(json!({ "location": "Lisbon", "temperatureC": 21, "conditions": "sunny" }))
            }),
        )
        .layer(payments);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let client = Client {
        http,
        app: format!("http://{app_addr}"),
        service: service_url,
        key,
    };
    let mut failures = Vec::new();
    let mut settled = 0usize;

    // Warm-up, left out of the figures.
    let mut warm = Samples::default();
    for _ in 0..settings.warmup {
        record(cycle(&client, &mut warm).await, &mut failures, &mut settled);
        record(
            direct(&client, &mut warm).await,
            &mut failures,
            &mut settled,
        );
        record(free(&client, &mut warm).await, &mut failures, &mut settled);
    }

    let self_pid = std::process::id();
    let mut samples = Samples::default();
    for _ in 0..settings.rounds {
        let start = samples.latencies.get(&Part::Paid).map_or(0, Vec::len);
        let start_cycle = samples.latencies.get(&Part::Cycle).map_or(0, Vec::len);
        for kind in ["cycle", "direct", "free"] {
            let service_before = Threads::of(service.pid());
            let bench_before = Threads::of(self_pid);
            let began = Instant::now();
            for _ in 0..settings.per_round() {
                let outcome = match kind {
                    "cycle" => cycle(&client, &mut samples).await,
                    "direct" => direct(&client, &mut samples).await,
                    _ => free(&client, &mut samples).await,
                };
                record(outcome, &mut failures, &mut settled);
            }
            let wall = began.elapsed();
            let service_cpu = Threads::of(service.pid()).since(&service_before);
            let bench_cpu = Threads::of(self_pid).since(&bench_before);
            let entry = samples.cpu.entry(kind).or_default();
            entry.0 += settings.per_round();
            entry.1 += wall;
            entry.2 += service_cpu;
            entry.3 += bench_cpu;
        }
        let median_of = |part: Part, from: usize| {
            let mut round: Vec<Duration> = samples
                .latencies
                .get(&part)
                .map_or_else(Vec::new, |all| all[from..].to_vec());
            round.sort_unstable();
            ms(percentile(&round, 0.5))
        };
        let round = (
            median_of(Part::Paid, start),
            median_of(Part::Cycle, start_cycle),
        );
        samples.round_p50.push(round);
    }

    report(&samples, settings);

    // The books: the deposit less every settle, nothing held.
    let books = audit(&client, funded_msat, settled).await;
    match &books {
        Ok(line) => println!("\nthe books after the run: {line}"),
        Err(err) => println!("\nthe books after the run: WRONG: {err}"),
    }
    println!("load average at the end: {}", read_trimmed("/proc/loadavg"));

    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => println!("the app's server ended with an error: {err}"),
        Err(err) => println!("the app's server task failed: {err}"),
    }
    let (clean, log) = service.stop();
    let lines: Vec<&str> = log.lines().collect();
    println!(
        "service: {}, {} log line(s) at RUST_LOG=warn",
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
    for failure in failures.iter().take(10) {
        println!("FAILED: {failure}");
    }
    if !failures.is_empty() {
        println!("{} request(s) failed", failures.len());
    }
    Ok(failures.is_empty() && books.is_ok())
}

/// Counts a unit's settles, or keeps its failure.
fn record(outcome: Result<usize, String>, failures: &mut Vec<String>, settled: &mut usize) {
    match outcome {
        Ok(count) => *settled += count,
        Err(err) => failures.push(err),
    }
}

/// One paid request: 402, sign, paid request. One settle.
async fn cycle(client: &Client, samples: &mut Samples) -> Result<usize, String> {
    let url = format!("{}/weather", client.app);
    let started = Instant::now();
    let challenge = client
        .http
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("GET /weather: {err}"))?;
    let status = challenge.status();
    let body = challenge
        .bytes()
        .await
        .map_err(|err| format!("GET /weather: HTTP {status}, body: {err}"))?;
    if status != reqwest::StatusCode::PAYMENT_REQUIRED {
        return Err(format!(
            "GET /weather without payment: HTTP {status} (expected 402): {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let required: PaymentRequired = serde_json::from_slice(&body)
        .map_err(|err| format!("the 402 body is not a v1 PaymentRequired: {err}"))?;
    let requirements = required
        .accepts
        .into_iter()
        .find(|accept| accept.network == NETWORK)
        .ok_or("the 402 offers no seed-flow requirements on regtest")?;
    let challenged = Instant::now();
    let header = client
        .key
        .payment_header(&requirements)
        .map_err(|err| err.to_string())?;
    let signed = Instant::now();
    let paid = client
        .http
        .get(&url)
        .header(X_PAYMENT, header)
        .send()
        .await
        .map_err(|err| format!("paid GET /weather: {err}"))?;
    let status = paid.status();
    let receipt = paid.headers().get(X_PAYMENT_RESPONSE).cloned();
    let body = paid
        .bytes()
        .await
        .map_err(|err| format!("paid GET /weather: HTTP {status}, body: {err}"))?;
    let done = Instant::now();
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "paid GET /weather: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let receipt = receipt.ok_or("paid GET /weather: 200 without X-PAYMENT-RESPONSE")?;
    let settlement = decode_payment_response_header(receipt.as_bytes(), MAX_HEADER_BYTES)
        .map_err(|err| format!("X-PAYMENT-RESPONSE: {err}"))?;
    if !settlement.success {
        return Err(format!(
            "X-PAYMENT-RESPONSE without success: {settlement:?}"
        ));
    }
    samples.push(Part::Cycle, done - started);
    samples.push(Part::Challenge, challenged - started);
    samples.push(Part::Sign, signed - challenged);
    samples.push(Part::Paid, done - signed);
    Ok(1)
}

/// The layer's three facilitator calls, made directly by the client. One settle.
async fn direct(client: &Client, samples: &mut Samples) -> Result<usize, String> {
    let mut request =
        RequirementsRequest::new(NETWORK, PRICE_MSAT, format!("{}/weather", client.app));
    request.description = "Current weather".into();
    request.mime_type = "application/json".into();
    let started = Instant::now();
    let answer = post(client, "/requirements", &request).await?;
    let minted = Instant::now();
    let requirements: PaymentRequirements = serde_json::from_value(answer)
        .map_err(|err| format!("POST /requirements: not PaymentRequirements: {err}"))?;
    let body = VerifyRequest::new(
        client
            .key
            .authorize(&requirements)
            .map_err(|err| err.to_string())?,
        requirements,
    );
    let signed = Instant::now();
    let verdict = post(client, "/verify", &body).await?;
    let verified = Instant::now();
    if verdict["isValid"] != Value::Bool(true) {
        return Err(format!("POST /verify: {verdict}"));
    }
    let settlement = post(client, "/settle", &body).await?;
    let done = Instant::now();
    if settlement["success"] != Value::Bool(true) {
        return Err(format!("POST /settle: {settlement}"));
    }
    samples.push(Part::Requirements, minted - started);
    samples.push(Part::Verify, verified - signed);
    samples.push(Part::Settle, done - verified);
    samples.push(Part::VerifySettle, done - signed);
    Ok(1)
}

/// A free request through the layer.
async fn free(client: &Client, samples: &mut Samples) -> Result<usize, String> {
    let started = Instant::now();
    let response = client
        .http
        .get(format!("{}/health", client.app))
        .send()
        .await
        .map_err(|err| format!("GET /health: {err}"))?;
    let status = response.status();
    let _ = response
        .bytes()
        .await
        .map_err(|err| format!("GET /health: HTTP {status}, body: {err}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("GET /health: HTTP {status}"));
    }
    samples.push(Part::Free, started.elapsed());
    Ok(0)
}

/// POSTs JSON to the service; the JSON answer of a 200.
async fn post(client: &Client, path: &str, body: &impl serde::Serialize) -> Result<Value, String> {
    let response = client
        .http
        .post(format!("{}{path}", client.service))
        .json(body)
        .send()
        .await
        .map_err(|err| format!("POST {path}: {err}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| format!("POST {path}: HTTP {status}, body: {err}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "POST {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|err| format!("POST {path}: not JSON: {err}"))
}

/// Prints the tables.
fn report(samples: &Samples, settings: &Settings) {
    let row = |label: &str, part: Part| {
        let sorted = samples.sorted(part);
        let mean = if sorted.is_empty() {
            0.0
        } else {
            ms(sorted.iter().sum::<Duration>()) / sorted.len() as f64
        };
        println!(
            "  {label:<58} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            sorted.len(),
            ms(percentile(&sorted, 0.50)),
            ms(percentile(&sorted, 0.90)),
            ms(percentile(&sorted, 0.99)),
            mean
        );
    };
    println!(
        "\nresults at 1 client (latency in ms, over every measured request; warm-up left out)"
    );
    println!(
        "  {:<58} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "what", "n", "p50", "p90", "p99", "mean"
    );
    println!("  a paid request through the layer and the service:");
    row(
        "  whole: GET -> 402, sign, GET + X-PAYMENT -> 200",
        Part::Cycle,
    );
    row(
        "  GET -> 402 (the layer mints: POST /requirements)",
        Part::Challenge,
    );
    row("  sign the invoice, encode X-PAYMENT (client)", Part::Sign);
    row(
        "  GET + X-PAYMENT -> 200 (verify -> handler -> settle)",
        Part::Paid,
    );
    println!("  the same client calling the service directly (no layer):");
    row("  POST /requirements", Part::Requirements);
    row("  POST /verify", Part::Verify);
    row("  POST /settle", Part::Settle);
    row("  POST /verify + POST /settle", Part::VerifySettle);
    println!("  the HTTP floor:");
    row("  GET /health through the layer (free route)", Part::Free);

    let p50 = |part: Part| ms(percentile(&samples.sorted(part), 0.5));
    println!(
        "\nend-to-end p50: a paid request {:.3} ms (its 402 round trip included: {:.3} ms); \
         the service's verify + settle alone {:.3} ms, so the layer and the app's HTTP add \
         about {:.3} ms (the issue aims at 2 ms)",
        p50(Part::Paid),
        p50(Part::Cycle),
        p50(Part::VerifySettle),
        p50(Part::Paid) - p50(Part::VerifySettle)
    );

    println!(
        "\nCPU time per unit (on-CPU time from /proc schedstat; units/s = units over their own wall time):"
    );
    println!(
        "  {:<46} {:>8} {:>14} {:>18}",
        "unit", "units/s", "service µs", "this process µs"
    );
    for (kind, label) in [
        ("cycle", "paid request (402 + paid GET)"),
        ("direct", "direct /requirements + /verify + /settle"),
        ("free", "free GET through the layer"),
    ] {
        let Some(&(units, wall, service, bench)) = samples.cpu.get(kind) else {
            continue;
        };
        let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / units.max(1) as f64;
        println!(
            "  {label:<46} {:>8.0} {:>14.0} {:>18.0}",
            units as f64 / wall.as_secs_f64(),
            per(service),
            per(bench)
        );
    }
    println!(
        "  (this process = the app with the layer, its facilitator client and the paying client)"
    );

    let cells: Vec<String> = samples
        .round_p50
        .iter()
        .map(|(paid, cycle)| format!("{paid:.3} / {cycle:.3}"))
        .collect();
    println!(
        "\nevery round ({} each), p50 ms of the paid request / of the whole: {}",
        settings.per_round(),
        cells.join("  ")
    );
}

/// The account holds its deposit less every settle, and nothing is held.
async fn audit(client: &Client, funded_msat: u64, settled: usize) -> Result<String, BoxError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let account = expect_json(
        client
            .http
            .get(format!(
                "{}/accounts/{SEED_NETWORK_ID}/{}",
                client.service,
                client.key.account()
            ))
            .header(
                "X402-Account-Signature",
                client.key.account_read_signature(SEED_NETWORK_ID, now),
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
    let expected = funded_msat - PRICE_MSAT * settled as u64;
    let (balance, held) = (amount("balance")?, amount("held")?);
    if balance != expected || held != 0 {
        return Err(format!(
            "balance {balance} msat, held {held}: expected {funded_msat} deposited - {settled} \
             settles x {PRICE_MSAT} = {expected}, 0 held"
        )
        .into());
    }
    Ok(format!(
        "balance {balance} msat = {funded_msat} deposited - {settled} settles x {PRICE_MSAT} msat, 0 held"
    ))
}

// ---------------------------------------------------------------------------------------------
// The service process.

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc, and small helpers.

/// On-CPU nanoseconds of a process's threads, by thread id.
struct Threads(HashMap<u32, u64>);

impl Threads {
    fn of(pid: u32) -> Self {
        let mut threads = HashMap::new();
        if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse().ok()) else {
                    continue;
                };
                let nanos = fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|text| text.split_whitespace().next()?.parse().ok());
                if let Some(nanos) = nanos {
                    threads.insert(tid, nanos);
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
            .map(|(tid, now)| now.saturating_sub(before.0.get(tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(nanos)
    }
}
