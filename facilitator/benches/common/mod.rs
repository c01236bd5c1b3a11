//! What the service's benchmarks share (included with `#[path]`): the service binary as a
//! process, pinning, and small helpers for the machine notes and the percentiles.

#![allow(dead_code)] // each benchmark uses its own part of this module

use std::error::Error;
use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use x402_lightning::v1::AccountKey;

/// The error of a benchmark step.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The service binary, built by cargo for the benchmarks.
pub const BINARY: &str = env!("CARGO_BIN_EXE_x402-lightning-facilitator");

/// The seed flow's network id in the benchmarks (regtest).
pub const SEED_NETWORK_ID: &str = "lightning-regtest";

/// How many times a deposit is read before it must say `credited`, and the wait between reads.
const DEPOSIT_READS: usize = 50;
const DEPOSIT_READ_PAUSE: Duration = Duration::from_millis(20);

/// How long the service may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running service; killed when dropped.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Service {
    /// Starts the binary on `database_url` (an environment without inherited
    /// `X402_FACILITATOR_*` variables, a free loopback port, regtest), pinned to `core` if
    /// given, and waits for its `listening on http://ADDR` line.
    pub fn start(
        dir: &Path,
        name: &str,
        database_url: &str,
        rust_log: &str,
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
            .env("X402_FACILITATOR_NETWORKS", "lightning-regtest")
            .env("X402_FACILITATOR_DATABASE_URL", database_url)
            .env("RUST_LOG", rust_log)
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log's length so far, bytes (the service writes each line to it at once).
    pub fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |metadata| metadata.len())
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after); returns whether it exited cleanly, and
    /// its log.
    pub fn stop(mut self) -> (bool, String) {
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
pub fn pin_this_process(core: usize, who: &str) -> bool {
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
        println!("note: taskset could not pin {who}: running unpinned");
    }
    pinned
}

/// The nearest-rank percentile of sorted durations.
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|_| "?".to_owned(), |text| text.trim().to_owned())
}

pub fn cpu_model() -> String {
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
pub fn filesystem_of(path: &Path) -> String {
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

/// A deposit of `amount_msat` to `key`'s account, paid through the simulated node, read until
/// credited.
pub async fn fund(
    http: &reqwest::Client,
    base: &str,
    key: &AccountKey,
    amount_msat: u64,
) -> Result<(), BoxError> {
    let deposit = expect_json(
        http.post(format!("{base}/accounts/deposits")).json(&json!({
            "network": SEED_NETWORK_ID,
            "account": key.account(),
            "amount": amount_msat.to_string(),
        })),
        201,
        "POST /accounts/deposits",
    )
    .await?;
    let invoice = deposit["invoice"]
        .as_str()
        .ok_or_else(|| format!("a deposit without an invoice: {deposit}"))?;
    let payment_hash = deposit["paymentHash"]
        .as_str()
        .ok_or_else(|| format!("a deposit without a payment hash: {deposit}"))?;
    expect_json(
        http.post(format!("{base}/pay"))
            .json(&json!({ "invoice": invoice })),
        200,
        "POST /pay",
    )
    .await?;
    for _ in 0..DEPOSIT_READS {
        let state = expect_json(
            http.get(format!("{base}/accounts/deposits/{payment_hash}")),
            200,
            "GET /accounts/deposits/{hash}",
        )
        .await?;
        match state["state"].as_str() {
            Some("credited") => return Ok(()),
            Some("pending") => tokio::time::sleep(DEPOSIT_READ_PAUSE).await,
            _ => return Err(format!("the deposit is not credited: {state}").into()),
        }
    }
    Err(format!("the deposit {payment_hash} stayed pending").into())
}

/// Sends `request`; its JSON answer if the status is `status`.
pub async fn expect_json(
    request: reqwest::RequestBuilder,
    status: u16,
    what: &str,
) -> Result<Value, BoxError> {
    let response = request
        .send()
        .await
        .map_err(|err| format!("{what}: {err}"))?;
    let got = response.status();
    let text = response
        .text()
        .await
        .map_err(|err| format!("{what}: HTTP {got}, body: {err}"))?;
    if got.as_u16() != status {
        return Err(format!("{what}: HTTP {got} (expected {status}): {text}").into());
    }
    serde_json::from_str(&text).map_err(|err| format!("{what}: not JSON ({err}): {text}").into())
}
