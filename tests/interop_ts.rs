//! Interop with the official x402 TypeScript client: `@x402/fetch` and `@x402/core` 2.27.0,
//! given our small `exact`/`lnbtc` scheme client (`interop/`), pay the demo over the lnbtc flow
//! for `GET /weather` and `POST /ai/infer`, and see a replay refused.
//!
//! It runs the demo binary (`cargo run --example demo`, built by `cargo test`) on free loopback
//! ports and `node interop/run.mjs` against it. Without node, or without the npm packages
//! (`npm ci` in `interop/` needs the npm registry), it says why and passes, unless
//! `X402_INTEROP_REQUIRED=1` (as `.ci/run` sets it) makes that a failure.

#[path = "common/demo_process.rs"]
mod demo_process;

use std::path::{Path, PathBuf};
use std::process::Command;

use demo_process::start_demo;

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

#[test]
fn the_official_typescript_client_pays_the_demo_over_lnbtc() {
    let interop = manifest_dir().join("interop");
    if Command::new("node").arg("--version").output().is_err() {
        return unavailable("node is not installed");
    }
    if let Err(why) = npm_packages(&interop) {
        return unavailable(&why);
    }
    // The demo as the README starts it: its default network (testnet, an upstream one).
    let demo = start_demo(&[]);
    let (demo_url, pay_url) = (&demo.url, format!("{}/pay", demo.mock_url));

    let output = Command::new("node")
        .arg("run.mjs")
        .current_dir(&interop)
        .env("X402_DEMO_URL", demo_url)
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
