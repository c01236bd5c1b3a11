//! What the paying client (`x402_lightning::client::Payer`) costs: a paid lnbtc request through
//! it against the same request made by hand with the scheme's client primitives, and a free
//! request through it against plain reqwest, at one client.
//!
//! `cargo bench -p x402-lightning-facilitator --bench client_pay`
//!
//! - The release service binary on a fresh SQLite file (its simulated node's `POST /pay` is
//!   the wallet), pinned to core 0; this process (one tokio current-thread runtime: an axum app
//!   with `X402Layer`, both flows, regtest, and the clients) pinned to core 1.
//! - Four workloads, interleaved in every round (BENCHMARKING.md): `payer` (`GET /weather`
//!   through the `Payer` middleware: 402, the checks, `/pay`, the paid request), `by hand` (the
//!   same steps with `lnbtc::client::select`, a `POST /pay`, `Selected::into_payment` and the
//!   header, on plain reqwest), `free, payer` and `free, plain` (`GET /health`).
//! - Every paid answer must be 200 with a successful `PAYMENT-RESPONSE`, or the run is invalid
//!   (exit status 1).
//!
//! Environment: `CLIENT_BENCH_N` (requests of each workload measured, default 1,000),
//! `CLIENT_BENCH_WARMUP` (default 100 of each), `CLIENT_BENCH_ROUNDS` (default 5),
//! `CLIENT_BENCH_PIN=0` (no pinning).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use x402_lightning::client::wallet::SimWallet;
use x402_lightning::client::{Payer, Receipt};
use x402_lightning::invoice::unix_now;
use x402_lightning::lnbtc::client::{
    ClientPolicy, IntendedRequest, PayerResult, PayerStatus, select,
};
use x402_lightning::lnbtc::header::{
    PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, decode_payment_required,
    decode_payment_response, encode_payment_signature,
};
use x402_lightning::{HttpFacilitator, Network, Price, X402Layer};

#[path = "common/mod.rs"]
mod common;

use common::{BoxError, Service, cpu_model, ms, percentile, pin_this_process, read_trimmed};

const PRICE_MSAT: u64 = 10_000;
const WORKLOADS: [&str; 4] = ["payer", "by hand", "free, payer", "free, plain"];

fn number(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => Ok(text
            .trim()
            .parse::<usize>()
            .map_err(|err| format!("{name}={text}: {err}"))?
            .max(1)),
        _ => Ok(default),
    }
}

fn main() -> ExitCode {
    let pin = std::env::var("CLIENT_BENCH_PIN").map_or(true, |value| value.trim() != "0");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pinned = pin && cores >= 2 && pin_this_process(1, "this process");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("client_pay bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(pinned, cores)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nINVALID RUN: some paid requests failed (above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("client_pay bench: {err}");
            ExitCode::FAILURE
        }
    }
}

struct Setup {
    payer: reqwest_middleware::ClientWithMiddleware,
    plain: reqwest::Client,
    app: String,
    pay_url: String,
}

async fn run(pinned: bool, cores: usize) -> Result<bool, BoxError> {
    let requests = number("CLIENT_BENCH_N", 1_000)?;
    let warmup = number("CLIENT_BENCH_WARMUP", 100)?;
    let rounds = number("CLIENT_BENCH_ROUNDS", 5)?;
    let per_round = requests.div_ceil(rounds);
    println!("x402-lightning: the paying client's cost (lnbtc, one client)");
    println!(
        "command: cargo bench -p x402-lightning-facilitator --bench client_pay  (CLIENT_BENCH_N={requests}, CLIENT_BENCH_WARMUP={warmup}, CLIENT_BENCH_ROUNDS={rounds})"
    );
    println!(
        "machine: {cores} cores, CPU {}, kernel {}, load average at start {}; build: {}; {}",
        cpu_model(),
        read_trimmed("/proc/sys/kernel/osrelease"),
        read_trimmed("/proc/loadavg"),
        if cfg!(debug_assertions) {
            "DEBUG ASSERTIONS ON"
        } else {
            "optimized"
        },
        if pinned {
            "service on core 0, this process on core 1"
        } else {
            "unpinned"
        }
    );

    let temp = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}", temp.path().join("client.db").display());
    let service = Service::start(
        temp.path(),
        "client",
        &database_url,
        "warn",
        pinned.then_some(0),
    )?;
    let service_url = format!("http://{}", service.addr);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = format!("http://{}", listener.local_addr()?);
    let payments = X402Layer::builder(
        HttpFacilitator::builder(&service_url).build()?,
        Network::Regtest,
    )
    .public_base_url(&app)
    .build()?;
    payments.check_facilitator().await?;
    let router = Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route(
            "/weather",
            get(|| async { Json(json!({ "conditions": "sunny" })) })
                .route_layer(payments.charge(Price::msat(PRICE_MSAT))?),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });

    let pay_url = format!("{service_url}/pay");
    let plain = reqwest::Client::new();
    let payer = Payer::builder()
        .wallet(SimWallet::new(&pay_url)?)
        .allow_network(Network::Regtest)
        .build()?
        .client(plain.clone());
    let setup = Setup {
        payer,
        plain,
        app,
        pay_url,
    };

    let mut failures = Vec::new();
    for _ in 0..warmup {
        for workload in WORKLOADS {
            if let Err(err) = one(&setup, workload).await {
                failures.push(format!("{workload} (warm-up): {err}"));
            }
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); WORKLOADS.len()];
    let mut round_p50 = Vec::new();
    for _ in 0..rounds {
        let mut this_round: Vec<Vec<Duration>> = vec![Vec::new(); WORKLOADS.len()];
        for _ in 0..per_round {
            for (at, workload) in WORKLOADS.iter().enumerate() {
                let started = Instant::now();
                match one(&setup, workload).await {
                    Ok(()) => this_round[at].push(started.elapsed()),
                    Err(err) => failures.push(format!("{workload}: {err}")),
                }
            }
        }
        round_p50.push(
            this_round
                .iter()
                .map(|latencies| {
                    let mut sorted = latencies.clone();
                    sorted.sort_unstable();
                    ms(percentile(&sorted, 0.5))
                })
                .collect::<Vec<_>>(),
        );
        for (all, round) in samples.iter_mut().zip(this_round) {
            all.extend(round);
        }
    }
    let (clean, _) = service.stop();

    println!("\n| workload | requests | p50 ms | p90 ms | p99 ms | p50 per round, ms |");
    println!("|---|---|---|---|---|---|");
    let mut p50 = Vec::new();
    for (workload, mut latencies) in WORKLOADS.iter().zip(samples) {
        latencies.sort_unstable();
        let rounds_text: Vec<String> = round_p50
            .iter()
            .map(|round| format!("{:.3}", round[p50.len()]))
            .collect();
        println!(
            "| {workload} | {} | {:.3} | {:.3} | {:.3} | {} |",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.9)),
            ms(percentile(&latencies, 0.99)),
            rounds_text.join(", ")
        );
        p50.push(ms(percentile(&latencies, 0.5)));
    }
    println!(
        "\nthe Payer's share of a paid request (p50, payer − by hand): {:+.3} ms; of a free request (p50, through the Payer − plain): {:+.3} ms",
        p50[0] - p50[1],
        p50[2] - p50[3]
    );
    if !clean {
        println!("(the service did not stop cleanly)");
    }
    for failure in failures.iter().take(10) {
        println!("FAILED {failure}");
    }
    Ok(failures.is_empty())
}

/// One request of `workload`; an error if it did not end as it must.
async fn one(setup: &Setup, workload: &str) -> Result<(), BoxError> {
    let weather = format!("{}/weather", setup.app);
    let health = format!("{}/health", setup.app);
    match workload {
        "payer" => {
            let response = setup.payer.get(&weather).send().await?;
            let settled = response
                .extensions()
                .get::<Receipt>()
                .and_then(|receipt| receipt.settlement.as_ref())
                .is_some_and(|settled| settled.success);
            expect_paid(response.status().as_u16(), settled)?;
            response.bytes().await?;
        }
        "by hand" => by_hand(setup, &weather).await?,
        "free, payer" => {
            let response = setup.payer.get(&health).send().await?;
            expect_status(response.status().as_u16(), 200)?;
            response.bytes().await?;
        }
        _ => {
            let response = setup.plain.get(&health).send().await?;
            expect_status(response.status().as_u16(), 200)?;
            response.bytes().await?;
        }
    }
    Ok(())
}

/// The lnbtc cycle with the scheme's client primitives.
async fn by_hand(setup: &Setup, url: &str) -> Result<(), BoxError> {
    let challenge = setup.plain.get(url).send().await?;
    expect_status(challenge.status().as_u16(), 402)?;
    let header = challenge
        .headers()
        .get(PAYMENT_REQUIRED)
        .ok_or("no PAYMENT-REQUIRED")?
        .as_bytes()
        .to_vec();
    challenge.bytes().await?;
    let required = decode_payment_required(&header, 64 * 1024)?;
    let intended = IntendedRequest::Http {
        method: "GET",
        url,
        body: b"",
        header_lines: &[],
    };
    let policy = ClientPolicy::default().allow(Network::Regtest);
    let selected = select(&required, &intended, &policy, unix_now().as_secs())?;
    let invoice = selected
        .requirements
        .invoice()
        .unwrap_or_default()
        .to_owned();
    let paid: Value = setup
        .plain
        .post(&setup.pay_url)
        .json(&json!({ "invoice": invoice }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let result = PayerResult {
        status: PayerStatus::Paid,
        invoice,
        payment_hash: paid["paymentHash"].as_str().unwrap_or_default().to_owned(),
        amount_msat: PRICE_MSAT,
        preimage: paid["preimage"].as_str().map(str::to_owned),
    };
    let proof = encode_payment_signature(&selected.into_payment(&result)?);
    let response = setup
        .plain
        .get(url)
        .header(PAYMENT_SIGNATURE, proof)
        .send()
        .await?;
    let settled = response
        .headers()
        .get(PAYMENT_RESPONSE)
        .and_then(|value| decode_payment_response(value.as_bytes(), 64 * 1024).ok())
        .is_some_and(|settled| settled.success);
    expect_paid(response.status().as_u16(), settled)?;
    response.bytes().await?;
    Ok(())
}

fn expect_status(status: u16, expected: u16) -> Result<(), BoxError> {
    if status == expected {
        Ok(())
    } else {
        Err(format!("answered {status}, expected {expected}").into())
    }
}

fn expect_paid(status: u16, settled: bool) -> Result<(), BoxError> {
    expect_status(status, 200)?;
    if settled {
        Ok(())
    } else {
        Err("no successful PAYMENT-RESPONSE".into())
    }
}
