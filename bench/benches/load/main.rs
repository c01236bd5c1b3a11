//! Side-by-side load benchmark of the payment layer, in one process on loopback:
//!
//! - bare axum serving the demo's handlers (twice: the second run is the A/A noise check);
//! - the *floor* of a 402: a handler that makes one receiver round trip (the mock's
//!   `/requirements`, asked as the layer asks it) and one strict invoice check, and nothing
//!   else; the 402 and paid paths are reported as ratios to it;
//! - the same app behind `X402Layer` offering the seed flow (the flow its peer speaks): a free
//!   route, the 402 path (with its `/requirements` round trip to the mock facilitator) and the
//!   paid path (verify + handler + settle);
//! - behind `X402Layer` offering both flows (the demo's default): the 402 path (one invoice,
//!   checked for both flows, bound to the request) and the lnbtc paid path (the scheme's checks
//!   + settle + handler);
//! - the same app behind `x402-axum` (EIP-155 price tags) on the same three paths, against a
//!   stub facilitator that answers valid/success;
//! - the mock facilitator and the stub as separate servers, so every facilitator call is real
//!   HTTP.
//!
//! The servers run on one thread pinned to one core; the load generator and both facilitators
//! share the other core. Scenarios are interleaved in rounds (rotating the order) and reported
//! as medians with every round, beside the server thread's CPU time per request.
//!
//! ```text
//! cargo bench -p x402-lightning-bench --bench load
//! ```
//!
//! Environment: `X402_BENCH_ROUNDS` (default 5), `X402_BENCH_SECONDS` per timed run (default 2),
//! `X402_BENCH_PAID` requests per paid run (default 2000), `X402_BENCH_CONNECTIONS` (default 32),
//! `X402_BENCH_SEQUENTIAL` requests per one-at-a-time run (default 400), `X402_BENCH_ONLY` a
//! comma-separated list of scenario numbers (0-11, in table order) to run alone, for profiling.

mod apps;
mod client;
mod cpu;
#[path = "../shared/demo.rs"]
mod demo;
mod report;
mod stub;

use std::error::Error;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use x402_lightning::header::X_PAYMENT;
use x402_lightning::invoice::unix_now;
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::{PAYMENT_REQUIRED, PAYMENT_SIGNATURE, decode_payment_required};
use x402_lightning::mock::{MockFacilitator, TestWallet};
use x402_lightning::{FacilitatorCall, Network, PaymentRequired};

use crate::apps::{EVM_PAY_TO, Servers};
use crate::client::{Budget, Plan};
use crate::cpu::Thread;
use crate::report::{Measured, Report};

/// Which server a scenario loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Bare,
    /// One receiver round trip and one invoice check per request.
    Floor,
    /// `X402Layer`, the seed flow only.
    Lightning,
    /// `X402Layer`, both flows; paid over lnbtc.
    LightningBoth,
    X402Axum,
}

/// Which path through the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `GET /health`: free everywhere.
    Free,
    /// `GET /weather` without payment: the handler on bare axum, 402 behind a layer.
    Weather,
    /// `GET /weather` with a fresh valid payment per request.
    Paid,
}

/// One line of the table.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub server: Server,
    pub path: Path,
}

pub const SCENARIOS: [Scenario; 12] = [
    Scenario {
        name: "bare axum       GET /health",
        server: Server::Bare,
        path: Path::Free,
    },
    Scenario {
        name: "bare axum (A/A) GET /health",
        server: Server::Bare,
        path: Path::Free,
    },
    Scenario {
        name: "x402-lightning  GET /health (free)",
        server: Server::Lightning,
        path: Path::Free,
    },
    Scenario {
        name: "x402-axum       GET /health (free)",
        server: Server::X402Axum,
        path: Path::Free,
    },
    Scenario {
        name: "bare axum       GET /weather",
        server: Server::Bare,
        path: Path::Weather,
    },
    Scenario {
        name: "floor: 1 mint + 1 invoice check",
        server: Server::Floor,
        path: Path::Weather,
    },
    Scenario {
        name: "x402-lightning  /weather 402 seed",
        server: Server::Lightning,
        path: Path::Weather,
    },
    Scenario {
        name: "x402-lightning  /weather 402 both",
        server: Server::LightningBoth,
        path: Path::Weather,
    },
    Scenario {
        name: "x402-axum       GET /weather -> 402",
        server: Server::X402Axum,
        path: Path::Weather,
    },
    Scenario {
        name: "x402-lightning  /weather paid seed",
        server: Server::Lightning,
        path: Path::Paid,
    },
    Scenario {
        name: "x402-lightning  /weather paid lnbtc",
        server: Server::LightningBoth,
        path: Path::Paid,
    },
    Scenario {
        name: "x402-axum       GET /weather paid",
        server: Server::X402Axum,
        path: Path::Paid,
    },
];

/// Knobs, from the environment.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub rounds: usize,
    pub seconds: f64,
    pub paid: usize,
    pub connections: usize,
    pub sequential: usize,
    /// Scenarios to run (all when `None`), for profiling one path.
    pub only: Option<u16>,
}

impl Settings {
    /// Whether scenario `index` runs.
    fn runs(&self, index: usize) -> bool {
        self.only.is_none_or(|mask| mask & 1 << index != 0)
    }

    fn from_env() -> Result<Self, Box<dyn Error>> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, Box<dyn Error>> {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={value}: not a number").into()),
                Err(_) => Ok(default),
            }
        }
        Ok(Self {
            rounds: var("X402_BENCH_ROUNDS", 5)?.max(1),
            seconds: var("X402_BENCH_SECONDS", 2.0)?,
            paid: var("X402_BENCH_PAID", 2000)?.max(1),
            connections: var("X402_BENCH_CONNECTIONS", 32)?.max(1),
            sequential: var("X402_BENCH_SEQUENTIAL", 400)?.max(1),
            only: match std::env::var("X402_BENCH_ONLY") {
                Err(_) => None,
                Ok(list) => Some(list.split(',').try_fold(0u16, |mask, item| {
                    match item.trim().parse::<usize>() {
                        Ok(index) if index < SCENARIOS.len() => Ok(mask | 1 << index),
                        _ => Err(format!(
                            "X402_BENCH_ONLY={list}: scenario numbers are 0 to {}",
                            SCENARIOS.len() - 1
                        )),
                    }
                })?),
            },
        })
    }
}

/// Everything a round needs.
struct Bench {
    settings: Settings,
    servers: Servers,
    server_threads: Arc<std::sync::Mutex<Vec<Thread>>>,
    mock: MockFacilitator,
    /// The load generator's client for fetching 402s to pay.
    http: reqwest::Client,
    wallet: TestWallet,
    nonce: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let settings = Settings::from_env()?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (server_core, load_core) = match cores.as_slice() {
        [first, second, ..] => (Some(*first), Some(*second)),
        _ => (None, None),
    };

    // The facilitators: their own thread, on the load generator's core.
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("facilitators".into())
        .spawn(move || {
            pin(load_core);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => return drop(tx.send(Err(err.to_string()))),
            };
            runtime.block_on(async move {
                let started = async {
                    let mock = MockFacilitator::builder()
                        .network(Network::Regtest)
                        .start()
                        .await?;
                    let stub_url = stub::serve().await.map_err(|err| err.to_string())?;
                    Ok::<_, Box<dyn Error>>((mock, stub_url))
                };
                let _ = tx.send(started.await.map_err(|err| err.to_string()));
                std::future::pending::<()>().await;
            });
        })?;
    let (mock, stub_url) = rx.recv()?.map_err(|err| format!("facilitators: {err}"))?;

    // The three apps: one thread, on its own core; its CPU time is the servers' cost.
    let server_threads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let (mock_url, pay_to, threads) = (
        mock.url(),
        mock.node().node_id(),
        Arc::clone(&server_threads),
    );
    std::thread::Builder::new()
        .name("servers".into())
        .spawn(move || {
            pin(server_core);
            let record = {
                let threads = Arc::clone(&threads);
                move || {
                    threads
                        .lock()
                        .map(|mut threads| threads.extend(Thread::current()))
                        .unwrap_or(())
                }
            };
            record();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(record)
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => return drop(tx.send(Err(err.to_string()))),
            };
            runtime.block_on(async move {
                let servers = apps::serve(&mock_url, pay_to, &stub_url).await;
                let _ = tx.send(servers.map_err(|err| err.to_string()));
                std::future::pending::<()>().await;
            });
        })?;
    let servers = rx.recv()?.map_err(|err| format!("servers: {err}"))?;

    // The load generator: this thread.
    pin(load_core);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), u64::MAX / 4);
    let http = reqwest::Client::new();
    let mut bench = Bench {
        settings,
        servers,
        server_threads,
        mock,
        http,
        wallet,
        nonce: 0,
    };

    println!(
        "x402-lightning load benchmark: {} cores; servers pinned to core {}, load generator and facilitators to core {}",
        cores.len(),
        server_core.map_or("-".to_owned(), |core| core.id.to_string()),
        load_core.map_or("-".to_owned(), |core| core.id.to_string()),
    );
    println!(
        "{} rounds; {} keep-alive connections; {} s per timed run, {} requests per paid run, {} per one-at-a-time run\n",
        settings.rounds, settings.connections, settings.seconds, settings.paid, settings.sequential
    );
    runtime.block_on(bench.run())
}

fn pin(core: Option<core_affinity::CoreId>) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        eprintln!("note: could not pin a thread to core {}", core.id);
    }
}

impl Bench {
    async fn run(&mut self) -> Result<(), Box<dyn Error>> {
        // Warm up every path: connections, pools, the layer's first-use `/supported` check.
        let warm = Settings {
            seconds: 0.3,
            paid: 200,
            ..self.settings
        };
        for (index, scenario) in SCENARIOS.into_iter().enumerate() {
            if !self.settings.runs(index) {
                continue;
            }
            let outcome = self
                .measure(scenario, warm, self.settings.connections)
                .await?;
            outcome.check(scenario.name)?;
        }

        let mut report = Report::new(self.settings);
        for round in 0..self.settings.rounds {
            for offset in 0..SCENARIOS.len() {
                let index = (round + offset) % SCENARIOS.len();
                if !self.settings.runs(index) {
                    continue;
                }
                let measured = self
                    .measure(SCENARIOS[index], self.settings, self.settings.connections)
                    .await?;
                measured.check(SCENARIOS[index].name)?;
                report.add(index, measured);
            }
            eprintln!("round {}/{} done", round + 1, self.settings.rounds);
        }
        report.print_throughput();

        // One request at a time: latency without queueing, and the layer's own share of it.
        let sequential = Settings {
            paid: self.settings.sequential,
            seconds: 0.0,
            ..self.settings
        };
        // Bare axum's `/weather`, then the paid `/weather` behind each layer.
        let one_at_a_time: Vec<usize> = SCENARIOS
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(
                    (s.server, s.path),
                    (Server::Bare, Path::Weather) | (_, Path::Paid)
                )
            })
            .map(|(index, _)| index)
            .collect();
        for _ in 0..self.settings.rounds {
            for &index in &one_at_a_time {
                if !self.settings.runs(index) {
                    continue;
                }
                let measured = self.measure(SCENARIOS[index], sequential, 1).await?;
                measured.check(SCENARIOS[index].name)?;
                report.add_sequential(index, measured);
            }
        }
        report.print_sequential();
        Ok(())
    }

    /// Runs one scenario once and measures it.
    async fn measure(
        &mut self,
        scenario: Scenario,
        settings: Settings,
        connections: usize,
    ) -> Result<Measured, Box<dyn Error>> {
        let addr = match scenario.server {
            Server::Bare => self.servers.bare,
            Server::Floor => self.servers.floor,
            Server::Lightning => self.servers.lightning,
            Server::LightningBoth => self.servers.lightning_both,
            Server::X402Axum => self.servers.x402_axum,
        };
        let timed = if settings.seconds > 0.0 {
            Budget::Time(Duration::from_secs_f64(settings.seconds))
        } else {
            Budget::Count(settings.sequential)
        };
        let (path, expect, budget, per_request) = match scenario.path {
            Path::Free => ("/health", StatusCode::OK, timed, None),
            Path::Weather if scenario.server == Server::Bare => {
                ("/weather", StatusCode::OK, timed, None)
            }
            Path::Weather => ("/weather", StatusCode::PAYMENT_REQUIRED, timed, None),
            Path::Paid => {
                let (payments, header) = match scenario.server {
                    Server::Lightning => (
                        self.lightning_payments(addr, settings.paid).await?,
                        X_PAYMENT,
                    ),
                    Server::LightningBoth => (
                        self.lnbtc_proofs(addr, settings.paid).await?,
                        PAYMENT_SIGNATURE,
                    ),
                    _ => (self.evm_payments(settings.paid)?, X_PAYMENT),
                };
                let header = HeaderName::from_bytes(header.as_bytes())?;
                (
                    "/weather",
                    StatusCode::OK,
                    Budget::Count(settings.paid),
                    Some((header, Arc::new(payments))),
                )
            }
        };
        let plan = Plan {
            addr,
            method: Method::GET,
            path,
            expect,
            budget,
            per_request,
        };
        self.mock.clear_calls();
        let cpu_before = self.server_cpu();
        let outcome = client::run(&plan, connections).await;
        let server_cpu = self.server_cpu().saturating_sub(cpu_before);
        let facilitator_times = self
            .mock
            .calls()
            .into_iter()
            .filter(|call| {
                matches!(
                    call.call,
                    FacilitatorCall::Verify
                        | FacilitatorCall::Settle
                        | FacilitatorCall::Requirements
                )
            })
            .map(|call| call.service_time)
            .collect();
        self.mock.clear_calls();
        Ok(Measured {
            outcome,
            server_cpu,
            facilitator_times,
        })
    }

    fn server_cpu(&self) -> Duration {
        self.server_threads
            .lock()
            .map(|threads| cpu::cpu_time(&threads))
            .unwrap_or_default()
    }

    /// `count` distinct valid payments of `GET /weather` behind `X402Layer` at `addr`, made as
    /// a client makes them: the invoice of a 402 from the layer, signed by the funded wallet.
    async fn lightning_payments(
        &mut self,
        addr: std::net::SocketAddr,
        count: usize,
    ) -> Result<Vec<HeaderValue>, Box<dyn Error>> {
        let url = format!("http://{addr}/weather");
        let mut payments = Vec::with_capacity(count);
        for _ in 0..count {
            let offer: PaymentRequired = self.http.get(&url).send().await?.json().await?;
            let requirements = offer.accepts.first().ok_or("a 402 without accepts")?;
            payments.push(HeaderValue::from_str(&self.wallet.pay(requirements))?);
        }
        Ok(payments)
    }

    /// `count` distinct paid `PAYMENT-SIGNATURE`s of `GET /weather` behind the both-flows
    /// `X402Layer` at `addr`, made as a client makes them: the challenge of a 402 from the
    /// layer, checked against the request, its invoice paid over the mock's Lightning network.
    async fn lnbtc_proofs(
        &mut self,
        addr: std::net::SocketAddr,
        count: usize,
    ) -> Result<Vec<HeaderValue>, Box<dyn Error>> {
        let url = format!("http://{addr}/weather");
        let intended = IntendedRequest::Http {
            method: "GET",
            url: &url,
            body: b"",
            header_lines: &[],
        };
        let mut proofs = Vec::with_capacity(count);
        for _ in 0..count {
            let challenge = self.http.get(&url).send().await?;
            let header = challenge
                .headers()
                .get(PAYMENT_REQUIRED)
                .ok_or("a 402 without PAYMENT-REQUIRED")?;
            let required = decode_payment_required(header.as_bytes(), 64 * 1024)?;
            let proof = self
                .wallet
                .pay_lnbtc(&self.mock, &required, &intended, unix_now().as_secs())
                .map_err(|err| format!("paying the challenge: {err}"))?;
            proofs.push(HeaderValue::from_str(&proof)?);
        }
        Ok(proofs)
    }

    /// `count` distinct x402-axum payments (EIP-3009 authorizations with distinct nonces; the
    /// stub facilitator does not check signatures).
    fn evm_payments(&mut self, count: usize) -> Result<Vec<HeaderValue>, Box<dyn Error>> {
        (0..count)
            .map(|_| {
                self.nonce += 1;
                let payload = serde_json::json!({
                    "x402Version": 1,
                    "scheme": "exact",
                    "network": "base-sepolia",
                    "payload": {
                        "signature": format!("0x{}", "5a".repeat(65)),
                        "authorization": {
                            "from": "0x857b06519E91e3A54538791bDbb0E22373e36b66",
                            "to": EVM_PAY_TO,
                            "value": "10000",
                            "validAfter": "0",
                            "validBefore": "4102444800",
                            "nonce": format!("0x{:064x}", self.nonce),
                        }
                    }
                });
                let encoded = BASE64.encode(serde_json::to_vec(&payload)?);
                Ok(HeaderValue::from_str(&encoded)?)
            })
            .collect()
    }
}

impl Measured {
    /// Fails the benchmark when a run answered something else than it should.
    fn check(&self, name: &str) -> Result<(), Box<dyn Error>> {
        match (&self.outcome.first_failure, self.outcome.requests()) {
            (Some(why), _) => {
                Err(format!("{name}: {} failures, first: {why}", self.outcome.failures).into())
            }
            (None, 0) => Err(format!("{name}: no request completed").into()),
            (None, _) => Ok(()),
        }
    }
}
