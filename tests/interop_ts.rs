//! Interop with the official x402 TypeScript client: `@x402/fetch` and `@x402/core` 2.27.0,
//! given our small `exact`/`lnbtc` scheme client (`interop/`), pay the demo over the lnbtc flow
//! for `GET /weather` and `POST /ai/infer`, and see a replay refused.
//!
//! It runs the demo binary (`cargo run --example demo`, built by `cargo test`) on free loopback
//! ports and `node interop/run.mjs` against it. Without node, or without the npm packages
//! (`npm ci` in `interop/` needs the npm registry), it says why and passes, unless
//! `X402_INTEROP_REQUIRED=1` (as `.ci/run` sets it) makes that a failure.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Stops the demo when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn required() -> bool {
    std::env::var("X402_INTEROP_REQUIRED").is_ok_and(|value| value == "1")
}

/// Skips the test (or fails it when interop is required) for `why`.
fn unavailable(why: &str) {
    assert!(!required(), "interop required but unavailable: {why}");
    eprintln!("skipping the TypeScript interop test: {why}");
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo binary next to this test's binary (`target/<profile>/examples/demo`), built if
/// missing.
fn demo_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let demo = profile_dir.join("examples").join("demo");
    if !demo.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "--example", "demo", "--features", "mock"])
            .current_dir(manifest_dir())
            .status()
            .ok()?;
        if !built.success() {
            return None;
        }
    }
    demo.exists().then_some(demo)
}

/// `npm ci` in `interop/` unless its packages are there.
fn npm_packages(interop: &Path) -> Result<(), String> {
    if interop.join("node_modules/@x402/fetch").exists() {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(interop)
        .status()
        .map_err(|err| format!("npm: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm ci failed: {status}"))
    }
}

/// Starts the demo on a free port with its embedded mock, and reads the demo's URL and the
/// mock's pay endpoint from its output.
fn start_demo(demo: &Path) -> (Running, String, String) {
    let mut child = Command::new(demo)
        .env("X402_BIND", "127.0.0.1:0")
        .env_remove("X402_FACILITATOR_URL")
        .env_remove("X402_PUBLIC_BASE_URL")
        .env_remove("X402_FLOWS")
        .env("X402_NETWORK", "lightning-regtest")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let running = Running(child);
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let (mut demo_url, mut mock_url) = (None, None);
    while demo_url.is_none() || mock_url.is_none() {
        let line = seen
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo prints its addresses within a minute");
        if let Some(url) = line.strip_prefix("listening on ") {
            demo_url = Some(url.trim().to_owned());
        }
        if let Some(url) = line.strip_prefix("embedded mock facilitator on ") {
            mock_url = Some(url.trim().to_owned());
        }
    }
    // Keep draining the demo's output so it never blocks on a full pipe.
    std::thread::spawn(move || while seen.recv().is_ok() {});
    let (Some(demo_url), Some(mock_url)) = (demo_url, mock_url) else {
        unreachable!("the loop ends once both are known");
    };
    (running, demo_url, format!("{mock_url}/pay"))
}

#[test]
fn the_official_typescript_client_pays_the_demo_over_lnbtc() {
    let interop = manifest_dir().join("interop");
    if Command::new("node").arg("--version").output().is_err() {
        return unavailable("node is not installed");
    }
    if let Err(why) = npm_packages(&interop) {
        return unavailable(&why);
    }
    let Some(demo) = demo_binary() else {
        return unavailable("the demo example could not be built");
    };
    let (_demo, demo_url, pay_url) = start_demo(&demo);

    let output = Command::new("node")
        .arg("run.mjs")
        .current_dir(&interop)
        .env("X402_DEMO_URL", &demo_url)
        .env("X402_PAY_URL", &pay_url)
        .env("X402_MAX_AMOUNT_MSAT", "5000000")
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the official client failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    for expected in [
        "OK GET /weather 200 payment-response={\"success\":true",
        "OK POST /ai/infer 200 payment-response={\"success\":true",
        "OK replay refused 402",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
