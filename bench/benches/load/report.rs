//! Medians, ratios and the printed tables.

use std::time::Duration;

use crate::client::{Outcome, quantile};
use crate::{Path, SCENARIOS, Server, Settings};

/// One run of one scenario.
#[derive(Debug)]
pub struct Measured {
    pub outcome: Outcome,
    /// CPU time the server thread used during the run.
    pub server_cpu: Duration,
    /// The mock facilitator's own time for each call it answered during the run, in order.
    pub facilitator_times: Vec<Duration>,
}

impl Measured {
    fn cpu_us_per_request(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.outcome.requests() as f64
    }

    fn facilitator_us_per_request(&self) -> f64 {
        let total: Duration = self.facilitator_times.iter().sum();
        total.as_secs_f64() * 1e6 / self.outcome.requests() as f64
    }
}

/// Every run, by scenario index.
pub struct Report {
    settings: Settings,
    rounds: Vec<Vec<Measured>>,
    sequential: Vec<Vec<Measured>>,
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values
        .into_iter()
        .filter(|value| value.is_finite())
        .collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn sorted(values: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut values: Vec<u64> = values.into_iter().collect();
    values.sort_unstable();
    values
}

/// The row of `server` on `path`.
fn find(server: Server, path: Path) -> Option<usize> {
    SCENARIOS
        .iter()
        .position(|other| other.server == server && other.path == path)
}

/// The scenarios a row is compared with: (bare axum, x402-axum on the same path, the floor
/// for a priced path of x402-lightning).
fn references(index: usize) -> (usize, Option<usize>, Option<usize>) {
    let scenario = SCENARIOS[index];
    let bare = match scenario.path {
        Path::Free => 0,
        Path::Weather | Path::Paid => find(Server::Bare, Path::Weather).unwrap_or(0),
    };
    let floor = match (scenario.server, scenario.path) {
        (Server::Lightning | Server::LightningBoth, Path::Weather | Path::Paid) => {
            find(Server::Floor, Path::Weather)
        }
        _ => None,
    };
    (bare, find(Server::X402Axum, scenario.path), floor)
}

impl Report {
    pub fn new(settings: Settings) -> Self {
        let empty = || SCENARIOS.iter().map(|_| Vec::new()).collect();
        Self {
            settings,
            rounds: empty(),
            sequential: empty(),
        }
    }

    pub fn add(&mut self, index: usize, measured: Measured) {
        self.rounds[index].push(measured);
    }

    pub fn add_sequential(&mut self, index: usize, measured: Measured) {
        self.sequential[index].push(measured);
    }

    /// The median over rounds of `this / reference`, paired round by round.
    fn ratio(&self, index: usize, reference: usize, metric: fn(&Measured) -> f64) -> f64 {
        median(
            self.rounds[index]
                .iter()
                .zip(&self.rounds[reference])
                .map(|(this, reference)| metric(this) / metric(reference)),
        )
    }

    pub fn print_throughput(&self) {
        println!(
            "Throughput: {} connections; medians of {} rounds; ratios are medians of per-round ratios",
            self.settings.connections, self.settings.rounds
        );
        println!(
            "{:<36} {:>9} {:>7} {:>7} {:>8} {:>8} {:>9} {:>7} {:>7} {:>7} {:>9}",
            "scenario",
            "req/s",
            "/bare",
            "/x402ax",
            "p50 µs",
            "p99 µs",
            "cpu µs/r",
            "/bare",
            "/x402ax",
            "/floor",
            "fac µs/r"
        );
        let per_second = |m: &Measured| m.outcome.per_second();
        let cpu = |m: &Measured| m.cpu_us_per_request();
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            let runs = &self.rounds[index];
            let (bare, peer, floor) = references(index);
            let versus = |reference: Option<usize>, metric| match reference {
                Some(reference) if reference != index => {
                    format!("{:.3}", self.ratio(index, reference, metric))
                }
                _ => "-".to_owned(),
            };
            let fac = median(runs.iter().map(Measured::facilitator_us_per_request));
            println!(
                "{:<36} {:>9.0} {:>7.3} {:>7} {:>8.0} {:>8.0} {:>9.1} {:>7.3} {:>7} {:>7} {:>9}",
                scenario.name,
                median(runs.iter().map(per_second)),
                self.ratio(index, bare, per_second),
                versus(peer, per_second),
                median(runs.iter().map(|m| m.outcome.quantile_us(0.5))),
                median(runs.iter().map(|m| m.outcome.quantile_us(0.99))),
                median(runs.iter().map(cpu)),
                self.ratio(index, bare, cpu),
                versus(peer, cpu),
                versus(floor, cpu),
                if fac > 0.0 {
                    format!("{fac:.1}")
                } else {
                    "-".to_owned()
                },
            );
        }
        println!("\nEvery round, req/s:");
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            let rounds: Vec<String> = self.rounds[index]
                .iter()
                .map(|m| format!("{:.0}", m.outcome.per_second()))
                .collect();
            println!("{:<36} {}", scenario.name, rounds.join(" "));
        }
        println!();
        self.print_targets();
    }

    fn print_targets(&self) {
        let per_second = |m: &Measured| m.outcome.per_second();
        let cpu = |m: &Measured| m.cpu_us_per_request();
        let row = |server: Server, path: Path| find(server, path).unwrap_or(0);
        let noise = self.ratio(1, 0, per_second);
        let noise_cpu = self.ratio(1, 0, cpu);
        println!(
            "A/A noise floor (bare vs bare): req/s ratio {noise:.3}, cpu/request ratio {noise_cpu:.3}"
        );
        let targets = [
            (
                "free route req/s vs bare axum",
                row(Server::Lightning, Path::Free),
                0,
                0.98,
            ),
            (
                "402 path req/s vs x402-axum",
                row(Server::Lightning, Path::Weather),
                row(Server::X402Axum, Path::Weather),
                1.0,
            ),
            (
                "paid path req/s vs x402-axum",
                row(Server::Lightning, Path::Paid),
                row(Server::X402Axum, Path::Paid),
                1.0,
            ),
        ];
        for (what, index, reference, target) in targets {
            let ratio = self.ratio(index, reference, per_second);
            let verdict = if ratio >= target { "met" } else { "MISSED" };
            println!("target {what} >= {target:.2}: {ratio:.3} ({verdict})");
        }
        // Server CPU per request against the floor's (one receiver round trip, one invoice
        // check): what the layer adds to the work every such 402 needs.
        let floor = row(Server::Floor, Path::Weather);
        let against_floor = [
            (
                "402 path, both flows, server CPU vs the floor",
                row(Server::LightningBoth, Path::Weather),
                Some(1.3),
            ),
            (
                "402 path, seed flow, server CPU vs the floor",
                row(Server::Lightning, Path::Weather),
                None,
            ),
            (
                "paid path, lnbtc, server CPU vs the floor",
                row(Server::LightningBoth, Path::Paid),
                None,
            ),
            (
                "paid path, seed flow, server CPU vs the floor",
                row(Server::Lightning, Path::Paid),
                None,
            ),
        ];
        for (what, index, target) in against_floor {
            let ratio = self.ratio(index, floor, cpu);
            match target {
                Some(target) => {
                    let verdict = if ratio <= target { "met" } else { "MISSED" };
                    println!("target {what} <= {target:.2}: {ratio:.3} ({verdict})");
                }
                None => println!("{what}: {ratio:.3}"),
            }
        }
    }

    pub fn print_sequential(&self) {
        println!(
            "\nOne request at a time (1 connection, {} requests x {} rounds):",
            self.settings.sequential, self.settings.rounds
        );
        println!(
            "{:<36} {:>8} {:>8} {:>9} {:>11} {:>9}",
            "scenario", "p50 µs", "p99 µs", "cpu µs/r", "facil. p50", "own p50"
        );
        let latencies = |index: usize| {
            sorted(
                self.sequential[index]
                    .iter()
                    .flat_map(|m| m.outcome.latencies.iter().copied()),
            )
        };
        let cpu = |index: usize| {
            median(
                self.sequential[index]
                    .iter()
                    .map(Measured::cpu_us_per_request),
            )
        };
        let mut bare_p50 = f64::NAN;
        let mut bare_cpu = f64::NAN;
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            if self.sequential[index].is_empty() {
                continue;
            }
            let all = latencies(index);
            let p50 = quantile(&all, 0.5) / 1e3;
            // The mock answers verify then settle for each request of the seed flow, settle
            // alone for lnbtc, one request at a time.
            let calls_per_request = match scenario.server {
                Server::LightningBoth => 1,
                _ => 2,
            };
            let (facilitator, own): (Vec<u64>, Vec<u64>) = self.sequential[index]
                .iter()
                .flat_map(|m| {
                    let calls = m.facilitator_times.chunks(calls_per_request);
                    m.outcome
                        .latencies
                        .iter()
                        .zip(calls)
                        .map(|(latency, calls)| {
                            let facilitator = calls.iter().sum::<Duration>().as_nanos() as u64;
                            (facilitator, latency.saturating_sub(facilitator))
                        })
                })
                .unzip();
            let (facilitator, own) = (sorted(facilitator), sorted(own));
            let show = |values: &[u64]| {
                if values.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{:.0}", quantile(values, 0.5) / 1e3)
                }
            };
            println!(
                "{:<36} {:>8.0} {:>8.0} {:>9.1} {:>11} {:>9}",
                scenario.name,
                p50,
                quantile(&all, 0.99) / 1e3,
                cpu(index),
                show(&facilitator),
                show(&own),
            );
            if scenario.server == Server::Bare {
                bare_p50 = p50;
                bare_cpu = cpu(index);
            } else if matches!(scenario.server, Server::Lightning | Server::LightningBoth)
                && !own.is_empty()
            {
                let overhead = quantile(&own, 0.5) / 1e3 - bare_p50;
                let verdict = if overhead <= 50.0 { "met" } else { "MISSED" };
                println!(
                    "  x402-lightning paid: own p50 beyond bare axum = {overhead:.0} µs (target <= 50: {verdict}); server CPU beyond bare axum = {:.1} µs/request",
                    cpu(index) - bare_cpu
                );
            } else {
                println!(
                    "  x402-axum paid: p50 beyond bare axum = {:.0} µs (stub facilitator, not timed); server CPU beyond bare axum = {:.1} µs/request",
                    p50 - bare_p50,
                    cpu(index) - bare_cpu
                );
            }
        }
    }
}
