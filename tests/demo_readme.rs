//! The demo and the paying client as the README runs them: `cargo run --example demo` with its
//! defaults (testnet, an upstream network, both flows, the embedded facilitator service), then
//! `cargo run --example pay` with the default client policy (upstream's networks only), in both
//! flows and for the POST route; and a browser's preflight from another origin.

#[path = "common/demo_process.rs"]
mod demo_process;

use std::process::{Command, Output};

use demo_process::{Demo, example_binary, start_demo};

/// Runs the `pay` example against `demo` with `args`, as the README does (no `X402_NETWORK`:
/// the default client policy), its wallet and the seed flow's facilitator (deposits) being the
/// demo's embedded facilitator service.
fn pay(demo: &Demo, args: &[&str]) -> Output {
    let pay = example_binary("pay").expect("the pay example builds");
    let mut command = Command::new(pay);
    for (name, _) in std::env::vars() {
        if name.starts_with("X402_") {
            command.env_remove(name);
        }
    }
    command
        .env("X402_DEMO_URL", &demo.url)
        .env("X402_PAY_URL", format!("{}/pay", demo.mock_url))
        .env("X402_FACILITATOR_URL", &demo.mock_url)
        .args(args)
        .output()
        .expect("pay runs")
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "pay failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn pay_with_the_default_client_policy_pays_the_demo_as_the_readme_starts_it() {
    let demo = start_demo(&[]);
    let testnet = "lnbtc:000000000933ea01ad0ee984209779ba";

    let lnbtc = succeeded(&pay(&demo, &[]));
    for expected in [
        format!("paid 10000 msat (+0 msat fee) through lnbtc on {testnet}"),
        "200 OK {\"conditions\":\"sunny\"".to_owned(),
    ] {
        assert!(
            lnbtc.contains(&expected),
            "missing {expected:?} in:\n{lnbtc}"
        );
    }

    let v1 = succeeded(&pay(&demo, &["--flow", "v1"]));
    assert!(v1.contains("Credited"), "{v1}");
    assert!(
        v1.contains("paid 10000 msat (+0 msat fee) through v1 on lightning-testnet"),
        "{v1}"
    );

    let infer = succeeded(&pay(
        &demo,
        &["/ai/infer", r#"{"prompt":"hello lightning world"}"#],
    ));
    assert!(infer.contains("200 OK"), "{infer}");
    assert!(infer.contains("world lightning hello"), "{infer}");
}

#[test]
fn the_demo_refuses_a_bad_body_before_minting_and_answers_preflights() {
    let demo = start_demo(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        // A body the route would reject: its 4xx, no invoice.
        let refused = client
            .post(format!("{}/ai/infer", demo.url))
            .header("content-type", "application/json")
            .body(r#"{"prompt": 42}"#)
            .send()
            .await
            .expect("sent");
        assert_eq!(refused.status(), 422);
        assert!(!refused.headers().contains_key("payment-required"));

        // A browser on another origin asks before it pays.
        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{}/weather", demo.url))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "payment-signature")
            .send()
            .await
            .expect("sent");
        assert_eq!(preflight.status(), 200);
        let allowed = preflight.headers()["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase();
        assert!(allowed.contains("payment-signature"), "{allowed}");
        // And reads the challenge from its script.
        let challenge = client
            .get(format!("{}/weather", demo.url))
            .header("origin", "https://shop.example")
            .send()
            .await
            .expect("sent");
        assert_eq!(challenge.status(), 402);
        let exposed = challenge.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase();
        assert!(exposed.contains("payment-required"), "{exposed}");
    });
}
