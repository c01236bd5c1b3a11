//! The seed flow end to end against the running service binary (SQLite, simulated node):
//! fund an account, verify, settle, read, withdraw.

mod common;

use common::Instance;
use common::seed::{fund, payment_body, post, random_key, read_account, requirements};
use serde_json::json;
use x402_lightning::Network;

#[tokio::test]
async fn an_account_funded_by_deposit_pays_a_recorded_invoice_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = common::sqlite_url(dir.path());
    let service = Instance::start(
        dir.path(),
        &[("X402_FACILITATOR_DATABASE_URL", url.as_str())],
    );
    let base = service.url("");
    let client = reqwest::Client::new();
    let key = random_key();

    fund(&client, &base, &key, "lightning-regtest", 50_000).await;
    let (status, account) = read_account(&client, &base, &key, "lightning-regtest").await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["balance"], "50000");
    assert_eq!(account["available"], "50000");

    let required = requirements(&client, &base, Network::Regtest, 10_000).await;
    let body = payment_body(&key, &required);
    let (status, verified) = post(&client, &base, "/verify", &body).await;
    assert_eq!(status, 200);
    assert_eq!(verified, json!({ "isValid": true, "payer": key.account() }));
    let (_, account) = read_account(&client, &base, &key, "lightning-regtest").await;
    assert_eq!(account["held"], "10000", "{account}");
    assert_eq!(account["available"], "40000", "{account}");

    let (status, settled) = post(&client, &base, "/settle", &body).await;
    assert_eq!(status, 200);
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["network"], "lightning-regtest");
    assert_eq!(settled["payer"], key.account());
    let (_, again) = post(&client, &base, "/settle", &body).await;
    assert_eq!(again["success"], false);
    assert_eq!(again["errorReason"], "duplicate_settlement");

    let (_, account) = read_account(&client, &base, &key, "lightning-regtest").await;
    assert_eq!(account["balance"], "40000", "{account}");
    assert_eq!(account["held"], "0", "{account}");

    // Withdraw to another (simulated) node.
    let external: serde_json::Value = client
        .post(format!("{base}/pay/external"))
        .json(&json!({ "amount": "20000", "network": "lightning-regtest" }))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let invoice = external["invoice"].as_str().expect("an invoice");
    let withdrawal = json!({
        "network": "lightning-regtest",
        "account": key.account(),
        "invoice": invoice,
        "maxFeeMsat": "100",
        "signature": key.sign_withdrawal(invoice, 100),
    });
    let (status, paid) = post(&client, &base, "/accounts/withdrawals", &withdrawal).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["state"], "succeeded", "{paid}");
    assert_eq!(paid["feeMsat"], "20", "{paid}");
    let (_, account) = read_account(&client, &base, &key, "lightning-regtest").await;
    assert_eq!(account["balance"], "19980", "{account}");
}
