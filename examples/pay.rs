//! A paying client: walks 402 → pay → 200 against the demo and prints each step.
//!
//! ```text
//! cargo run --example demo                                   # in one terminal
//! cargo run --example pay                                    # GET /weather
//! cargo run --example pay -- /premium/report.txt
//! cargo run --example pay -- /ai/infer '{"prompt":"hello lightning"}'   # POST with a body
//! ```
//!
//! Environment:
//! - `X402_DEMO_URL`: where the demo listens (default `http://127.0.0.1:3000`);
//! - `X402_WALLET_KEY`: the paying wallet's secret key, 64 hex (default: the public demo wallet
//!   the demo's embedded mock facilitator funds).

use std::error::Error;

use lightning_invoice::Bolt11Invoice;
use reqwest::{Method, StatusCode};
use x402_lightning::PaymentRequired;
use x402_lightning::header::{X_PAYMENT, X_PAYMENT_RESPONSE, decode_payment_response_header};
use x402_lightning::invoice::{check_requirements_invoice, unix_now};
use x402_lightning::mock::TestWallet;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let base = std::env::var("X402_DEMO_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let wallet = match std::env::var("X402_WALLET_KEY") {
        Ok(hex) => TestWallet::from_secret_hex(hex.trim())
            .map_err(|err| format!("X402_WALLET_KEY: {err}"))?,
        Err(_) => TestWallet::demo(),
    };
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/weather".into());
    let body = args.next();
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let send = |payment: Option<&str>| {
        let mut request = client.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        if let Some(payment) = payment {
            request = request.header(X_PAYMENT, payment);
        }
        request.send()
    };

    println!("1. {method} {url} without payment");
    let response = send(None)
        .await
        .map_err(|err| format!("is the demo running? {err}"))?;
    let status = response.status();
    println!("   <- {status}");
    if status != StatusCode::PAYMENT_REQUIRED {
        println!("   {}", response.text().await?);
        println!("   (not a priced route: nothing to pay)");
        return Ok(());
    }
    let required: PaymentRequired = response.json().await?;
    let requirements = required
        .accepts
        .first()
        .ok_or("the 402 answer accepts no payment")?;
    println!("   error:       {}", required.error);
    println!(
        "   accepts:     {} {} msat on {}, payTo {}",
        requirements.scheme.as_str(),
        requirements.max_amount_required,
        requirements.network,
        requirements.pay_to
    );
    println!("   resource:    {}", requirements.resource);
    println!("   invoice:     {}", requirements.extra.invoice);

    // Never sign an invoice that is not what the requirements say (amount, network, payee).
    check_requirements_invoice(requirements, unix_now())
        .map_err(|err| format!("refusing to pay: {err}"))?;
    let invoice: Bolt11Invoice = requirements
        .extra
        .invoice
        .parse()
        .map_err(|err| format!("the invoice does not decode: {err}"))?;
    println!("2. checked the invoice against the requirements with lightning-invoice");
    println!(
        "   amount:       {} msat",
        invoice.amount_milli_satoshis().unwrap_or(0)
    );
    println!("   currency:     {}", invoice.currency());
    println!("   payee:        {}", invoice.get_payee_pub_key());
    println!("   payment hash: {}", invoice.payment_hash());
    println!("   expires in:   {} s", invoice.expiry_time().as_secs());

    let payment = wallet.pay(requirements);
    println!("3. signed the invoice with wallet {}", wallet.id());
    println!("   X-PAYMENT: {}...", payment.get(..48).unwrap_or(&payment));

    println!("4. {method} {url} with X-PAYMENT");
    let response = send(Some(&payment)).await?;
    let status = response.status();
    println!("   <- {status}");
    if let Some(value) = response.headers().get(X_PAYMENT_RESPONSE) {
        let settlement = decode_payment_response_header(value.as_bytes(), 64 * 1024)?;
        println!(
            "   X-PAYMENT-RESPONSE: success={} transaction={} network={} payer={}",
            settlement.success,
            settlement.transaction,
            settlement.network,
            settlement.payer.as_deref().unwrap_or("-")
        );
    }
    println!("   {}", response.text().await?.trim_end());
    if !status.is_success() {
        return Err(format!("payment not accepted: {status}").into());
    }

    println!("5. replay the same X-PAYMENT");
    let replay = send(Some(&payment)).await?;
    let status = replay.status();
    let refused: serde_json::Value = replay.json().await?;
    println!(
        "   <- {status}: {}",
        refused["error"].as_str().unwrap_or("?")
    );
    Ok(())
}
