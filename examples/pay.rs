//! A paying client: walks 402 → pay → 200 against the demo and prints each step, in the
//! upstream `lnbtc` flow (x402 version 2: pay the invoice over Lightning, send the preimage) by
//! default, or in the seed flow (x402 version 1: sign an authorization) with `--flow v1`.
//!
//! ```text
//! cargo run --example demo                                   # in one terminal
//! cargo run --example pay                                    # GET /weather, lnbtc
//! cargo run --example pay -- --flow v1                       # GET /weather, seed flow
//! cargo run --example pay -- /premium/report.txt
//! cargo run --example pay -- /ai/infer '{"prompt":"hello lightning"}'   # POST with a body
//! cargo run --example pay -- --withdraw 20000                # the seed flow's account pays
//!                                                            # 20,000 msat to another node
//! cargo run --example pay -- --balance                       # the account's signed read
//! ```
//!
//! Environment:
//! - `X402_DEMO_URL`: where the demo listens (default `http://127.0.0.1:3000`);
//! - `X402_PAY_URL`: the Lightning "wallet": an endpoint that pays a BOLT11 invoice and returns
//!   its preimage, `POST {"invoice": …}` → `{"preimage", "paymentHash", "amountMsat"}` (default
//!   `X402_FACILITATOR_URL` + `/pay`: the simulated node of the demo's embedded facilitator
//!   service, or of one you run);
//! - `X402_WALLET_KEY`: the seed flow's account key, 64 hex (default: the public demo key,
//!   `x402_lightning::mock::DEMO_WALLET_SECRET`: for demos only);
//! - `X402_FACILITATOR_URL`: the facilitator holding the seed flow's account (default
//!   `http://127.0.0.1:4021`, the demo's embedded facilitator service); the seed flow deposits
//!   to the account first, paying the deposit invoice through `X402_PAY_URL`;
//! - `X402_NETWORK`: a network to pay on besides upstream's mainnet and testnet (set it as the
//!   demo's, e.g. `lightning-regtest`); an lnbtc offer on another network is refused.

use std::error::Error;

use lightning_invoice::Bolt11Invoice;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use x402_lightning::header::{X_PAYMENT, X_PAYMENT_RESPONSE, decode_payment_response_header};
use x402_lightning::invoice::{check_requirements_invoice, unix_now};
use x402_lightning::lnbtc::client::{
    ClientPolicy, IntendedRequest, PayerResult, PayerStatus, select,
};
use x402_lightning::lnbtc::header::{
    PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, decode_payment_required,
    decode_payment_response, encode_payment_signature,
};
use x402_lightning::mock::DEMO_WALLET_SECRET;
use x402_lightning::v1::AccountKey;
use x402_lightning::v1::accounts::{AccountBalance, DepositInvoice, DepositStatus};
use x402_lightning::{Network, PaymentRequired};

/// One request of the walk: method, URL and optional JSON body.
struct Walk {
    client: reqwest::Client,
    method: Method,
    url: String,
    body: Option<String>,
}

impl Walk {
    /// Sends the request, with a payment header when given.
    async fn send(&self, payment: Option<(&str, &str)>) -> reqwest::Result<reqwest::Response> {
        let mut request = self.client.request(self.method.clone(), &self.url);
        if let Some(body) = &self.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        if let Some((name, value)) = payment {
            request = request.header(name, value);
        }
        request.send().await
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!(
            "usage: cargo run --example pay -- [--flow lnbtc|v1] [PATH] [JSON BODY]\n\
                    cargo run --example pay -- --withdraw MSAT [--network NETWORK]\n\
                    cargo run --example pay -- --balance [--network NETWORK]\n\
             env: X402_DEMO_URL (http://127.0.0.1:3000), X402_FACILITATOR_URL \
             (http://127.0.0.1:4021: the seed flow's account), X402_PAY_URL (X402_FACILITATOR_URL \
             + /pay: the Lightning payer), X402_WALLET_KEY (the public demo key), X402_NETWORK (a \
             network to pay on besides mainnet and testnet)"
        );
        return Ok(());
    }
    let base = std::env::var("X402_DEMO_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let network = match args.iter().position(|arg| arg == "--network") {
        Some(at) => args
            .get(at + 1)
            .cloned()
            .ok_or("--network takes a network")?,
        None => Network::Testnet.as_str().to_owned(),
    };
    if let Some(at) = args.iter().position(|arg| arg == "--withdraw") {
        let amount = args
            .get(at + 1)
            .and_then(|amount| amount.parse::<u64>().ok())
            .ok_or("--withdraw takes an amount in msat")?;
        return withdraw(amount, &network).await;
    }
    if args.iter().any(|arg| arg == "--balance") {
        let (key, facilitator) = account_settings()?;
        let client = reqwest::Client::new();
        let balance = Account {
            client: &client,
            facilitator: &facilitator,
            key: &key,
            network: &network,
        }
        .balance()
        .await?;
        println!("{}", serde_json::to_string(&balance)?);
        return Ok(());
    }
    let flow = match args.iter().position(|arg| arg == "--flow") {
        Some(at) if at + 1 < args.len() => {
            let flow = args.remove(at + 1);
            args.remove(at);
            flow
        }
        Some(_) => return Err("--flow takes v1 or lnbtc".into()),
        None => "lnbtc".to_owned(),
    };
    let mut args = args.into_iter();
    let path = args.next().unwrap_or_else(|| "/weather".into());
    let body = args.next();
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let walk = Walk {
        client: reqwest::Client::new(),
        method,
        url: format!("{}{path}", base.trim_end_matches('/')),
        body,
    };
    match flow.as_str() {
        "lnbtc" => pay_lnbtc(&walk).await,
        "v1" => pay_v1(&walk).await,
        other => Err(format!("unknown flow {other:?}: expected v1 or lnbtc").into()),
    }
}

/// The pay endpoint's answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paid {
    preimage: String,
    payment_hash: String,
    amount_msat: String,
}

/// The lnbtc flow: read `PAYMENT-REQUIRED`, check the offer against this very request, pay the
/// invoice over Lightning, send the preimage in `PAYMENT-SIGNATURE`.
async fn pay_lnbtc(walk: &Walk) -> Result<(), Box<dyn Error>> {
    let (method, url) = (&walk.method, &walk.url);
    let pay_url = payer_url()?;
    println!("1. {method} {url} without payment");
    let response = walk
        .send(None)
        .await
        .map_err(|err| format!("is the demo running? {err}"))?;
    let status = response.status();
    println!("   <- {status}");
    let Some(header) = response.headers().get(PAYMENT_REQUIRED) else {
        println!("   {}", response.text().await?);
        if status.is_success() {
            println!("   (no PAYMENT-REQUIRED header: not a priced lnbtc route)");
            return Ok(());
        }
        return Err(format!("no challenge to pay: the demo answered {status}").into());
    };
    let required = decode_payment_required(header.as_bytes(), 64 * 1024)?;
    let offer = required
        .accepts
        .first()
        .ok_or("the challenge accepts no payment")?;
    println!("   PAYMENT-REQUIRED (decoded):");
    println!(
        "   error:       {}",
        required.error.as_deref().unwrap_or("-")
    );
    println!("   resource:    {}", required.resource.url);
    println!(
        "   accepts:     {} {} msat on {}, payTo {}",
        offer.scheme, offer.amount, offer.network, offer.pay_to
    );
    println!(
        "   binding:     {} {} requestHash {}",
        offer.extra["requestBindingProfile"],
        offer.extra["requestBindingParams"],
        offer.request_hash().unwrap_or("-")
    );
    println!("   invoice:     {}", offer.invoice().unwrap_or("-"));

    // Never pay an invoice that is not bound to this request, or not what the offer says.
    let body = walk.body.as_deref().unwrap_or_default().as_bytes();
    let content_type: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
    let header_lines: &[(&str, &[u8])] = if walk.body.is_some() {
        &content_type
    } else {
        &[]
    };
    let intended = IntendedRequest::Http {
        method: method.as_str(),
        url,
        body,
        header_lines,
    };
    // Upstream's networks (mainnet, testnet), plus the one the demo was told to use, if any.
    let mut policy = ClientPolicy::default();
    if let Some(name) = std::env::var("X402_NETWORK")
        .ok()
        .filter(|name| !name.trim().is_empty())
    {
        let network: Network = name
            .trim()
            .parse()
            .map_err(|err| format!("X402_NETWORK: {err}"))?;
        policy = policy.allow(network);
    }
    let now = unix_now().as_secs();
    let selected = select(&required, &intended, &policy, now).map_err(|err| {
        let hint = if err.reason == x402_lightning::lnbtc::reason::UNSUPPORTED_NETWORK {
            " (to pay on the demo's network, set X402_NETWORK as the demo's, e.g. \
             X402_NETWORK=lightning-regtest)"
        } else {
            ""
        };
        format!("refusing to pay: {err}{hint}")
    })?;
    let invoice = &selected.invoice;
    println!("2. checked the offer as the scheme's client must");
    println!(
        "   binding:      recomputed from this request; the invoice's description hash matches"
    );
    println!("   amount:       {} msat", invoice.amount_msat.unwrap_or(0));
    println!("   payee:        {} (= payTo)", invoice.payee);
    println!("   payment hash: {}", invoice.payment_hash_hex());
    println!("   expires in:   {} s", invoice.end().saturating_sub(now));

    let text = selected
        .requirements
        .invoice()
        .unwrap_or_default()
        .to_owned();
    let paying = walk
        .client
        .post(&pay_url)
        .json(&serde_json::json!({ "invoice": text }))
        .send()
        .await
        .map_err(|err| format!("cannot reach the Lightning payer at {pay_url}: {err}"))?;
    if !paying.status().is_success() {
        return Err(format!("the payer at {pay_url} refused: {}", refusal(paying).await).into());
    }
    let paid: Paid = paying.json().await?;
    println!("3. paid the invoice through {pay_url}");
    println!(
        "   preimage:     {}…",
        paid.preimage.get(..16).unwrap_or(&paid.preimage)
    );
    let result = PayerResult {
        status: PayerStatus::Paid,
        invoice: text,
        payment_hash: paid.payment_hash,
        amount_msat: paid.amount_msat.parse()?,
        preimage: Some(paid.preimage),
    };
    let payment = selected
        .into_payment(&result)
        .map_err(|err| format!("the payer's result is no proof: {err}"))?;
    let proof = encode_payment_signature(&payment);
    println!(
        "   PAYMENT-SIGNATURE: {}...",
        proof.get(..48).unwrap_or(&proof)
    );

    println!("4. {method} {url} with PAYMENT-SIGNATURE");
    let response = walk.send(Some((PAYMENT_SIGNATURE, &proof))).await?;
    let status = response.status();
    println!("   <- {status}");
    if let Some(value) = response.headers().get(PAYMENT_RESPONSE) {
        let settlement = decode_payment_response(value.as_bytes(), 64 * 1024)?;
        println!(
            "   PAYMENT-RESPONSE: success={} transaction={} network={}",
            settlement.success, settlement.transaction, settlement.network
        );
    }
    let paid =
        response.headers().contains_key(PAYMENT_RESPONSE) && status != StatusCode::PAYMENT_REQUIRED;
    println!("   {}", response.text().await?.trim_end());
    if !status.is_success() {
        if paid {
            // Upfront: the payment was taken before the handler answered.
            return Err(format!("paid, but the handler answered {status}").into());
        }
        return Err(format!("payment not accepted: {status}").into());
    }

    println!("5. replay the same PAYMENT-SIGNATURE");
    let replay = walk.send(Some((PAYMENT_SIGNATURE, &proof))).await?;
    let status = replay.status();
    let refused: serde_json::Value = replay.json().await?;
    println!(
        "   <- {status}: {}",
        refused["error"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// The seed flow: fund the account at the facilitator (a deposit paid over Lightning), then
/// sign an authorization for the 402's invoice and send it in `X-PAYMENT`; the facilitator
/// pays it from the account.
async fn pay_v1(walk: &Walk) -> Result<(), Box<dyn Error>> {
    let (key, facilitator) = account_settings()?;
    let pay_url = payer_url()?;
    let (method, url) = (&walk.method, &walk.url);
    println!("1. {method} {url} without payment");
    let response = walk
        .send(None)
        .await
        .map_err(|err| format!("is the demo running? {err}"))?;
    let status = response.status();
    println!("   <- {status}");
    if status != StatusCode::PAYMENT_REQUIRED {
        println!("   {}", response.text().await?);
        println!("   (not a priced route: nothing to pay)");
        return Ok(());
    }
    let body: serde_json::Value = response.json().await?;
    if body["x402Version"] != 1 {
        return Err(format!(
            "the server offers no seed-flow (x402 version 1) payment here, only {}: run without \
             --flow v1 to pay with lnbtc",
            body["accepts"][0]["network"]
        )
        .into());
    }
    let required: PaymentRequired = serde_json::from_value(body)?;
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

    // Fund the account with ten times the price: a deposit invoice of the facilitator's node,
    // paid over Lightning.
    let network = requirements.network.as_str();
    let account = Account {
        client: &walk.client,
        facilitator: &facilitator,
        key: &key,
        network,
    };
    let amount = requirements.max_amount_required.saturating_mul(10);
    let deposit = account.deposit(amount).await?;
    println!(
        "3. deposited {amount} msat to account {} at {facilitator}",
        key.account()
    );
    println!("   deposit invoice: {}", deposit.invoice);
    let paying = walk
        .client
        .post(&pay_url)
        .json(&serde_json::json!({ "invoice": deposit.invoice }))
        .send()
        .await
        .map_err(|err| format!("cannot reach the Lightning payer at {pay_url}: {err}"))?;
    if !paying.status().is_success() {
        return Err(format!(
            "the payer at {pay_url} refused the deposit: {}",
            refusal(paying).await
        )
        .into());
    }
    println!("   paid it through {pay_url}");
    let state = account.deposit_state(&deposit.payment_hash).await?;
    println!("   deposit {}: {:?}", deposit.payment_hash, state.state);
    let before = account.balance().await?;
    println!(
        "   balance:      {} msat (held {}, available {})",
        before.balance, before.held, before.available
    );

    let payment = key
        .payment_header(requirements)
        .map_err(|err| format!("refusing to pay: {err}"))?;
    println!("4. signed the invoice with account {}", key.account());
    println!("   X-PAYMENT: {}...", payment.get(..48).unwrap_or(&payment));

    println!("5. {method} {url} with X-PAYMENT");
    let response = walk.send(Some((X_PAYMENT, &payment))).await?;
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
    let after = account.balance().await?;
    println!(
        "   balance:      {} msat (was {}: {} msat paid from the account)",
        after.balance,
        before.balance,
        before.balance.saturating_sub(after.balance)
    );

    println!("6. replay the same X-PAYMENT");
    let replay = walk.send(Some((X_PAYMENT, &payment))).await?;
    let status = replay.status();
    let refused: serde_json::Value = replay.json().await?;
    println!(
        "   <- {status}: {}",
        refused["error"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Withdraws `amount_msat` from the seed flow's account to an invoice of another node (the
/// simulated node's `POST /pay/external`), with a fee limit of 1 %, and shows the balance
/// before and after.
async fn withdraw(amount_msat: u64, network: &str) -> Result<(), Box<dyn Error>> {
    let (key, facilitator) = account_settings()?;
    let client = reqwest::Client::new();
    let account = Account {
        client: &client,
        facilitator: &facilitator,
        key: &key,
        network,
    };
    let before = account.balance().await?;
    println!(
        "1. account {} on {network}: {} msat (available {})",
        key.account(),
        before.balance,
        before.available
    );
    let external: serde_json::Value = client
        .post(format!("{facilitator}/pay/external"))
        .json(&serde_json::json!({ "amount": amount_msat.to_string(), "network": network }))
        .send()
        .await?
        .error_for_status()
        .map_err(|err| format!("no simulated node to mint another node's invoice: {err}"))?
        .json()
        .await?;
    let invoice = external["invoice"].as_str().ok_or("no invoice")?;
    println!("2. an invoice of another node for {amount_msat} msat: {invoice}");
    let max_fee_msat = amount_msat.div_ceil(100);
    let response = client
        .post(format!("{facilitator}/accounts/withdrawals"))
        .json(&serde_json::json!({
            "network": network,
            "account": key.account(),
            "invoice": invoice,
            "maxFeeMsat": max_fee_msat.to_string(),
            "signature": key.sign_withdrawal(invoice, max_fee_msat),
        }))
        .send()
        .await?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await?;
    println!("3. POST /accounts/withdrawals (signed, maxFeeMsat {max_fee_msat})");
    println!("   <- {status}");
    println!("   {answer}");
    let after = account.balance().await?;
    println!(
        "4. account: {} msat (was {}: {} msat left it)",
        after.balance,
        before.balance,
        before.balance.saturating_sub(after.balance)
    );
    if !status.is_success() {
        return Err(format!("the withdrawal was refused: {status}").into());
    }
    Ok(())
}

/// The Lightning payer: `X402_PAY_URL`, or the facilitator's simulated node.
fn payer_url() -> Result<String, Box<dyn Error>> {
    match std::env::var("X402_PAY_URL") {
        Ok(url) => Ok(url),
        Err(_) => Ok(format!("{}/pay", account_settings()?.1)),
    }
}

/// What a payer or facilitator answered, for an error message: its status and the start of its
/// body.
async fn refusal(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    format!("{status}: {}", text.trim())
}

/// The seed flow's account key (`X402_WALLET_KEY`, or the public demo key) and facilitator
/// (`X402_FACILITATOR_URL`).
fn account_settings() -> Result<(AccountKey, String), Box<dyn Error>> {
    let secret = std::env::var("X402_WALLET_KEY").unwrap_or_else(|_| DEMO_WALLET_SECRET.into());
    let key =
        AccountKey::from_secret_hex(&secret).map_err(|err| format!("X402_WALLET_KEY: {err}"))?;
    let facilitator = std::env::var("X402_FACILITATOR_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:4021".into())
        .trim_end_matches('/')
        .to_owned();
    Ok((key, facilitator))
}

/// The seed flow's account at the facilitator.
struct Account<'a> {
    client: &'a reqwest::Client,
    facilitator: &'a str,
    key: &'a AccountKey,
    network: &'a str,
}

impl Account<'_> {
    /// `POST /accounts/deposits`: a deposit invoice crediting the account once paid.
    async fn deposit(&self, amount_msat: u64) -> Result<DepositInvoice, Box<dyn Error>> {
        let response = self
            .client
            .post(format!("{}/accounts/deposits", self.facilitator))
            .json(&serde_json::json!({
                "network": self.network,
                "account": self.key.account(),
                "amount": amount_msat.to_string(),
            }))
            .send()
            .await
            .map_err(|err| {
                format!(
                    "cannot reach the facilitator at {}: {err}",
                    self.facilitator
                )
            })?;
        if response.status() != StatusCode::CREATED {
            return Err(format!(
                "the facilitator refused the deposit ({}): {}",
                response.status(),
                response.text().await?
            )
            .into());
        }
        Ok(response.json().await?)
    }

    /// `GET /accounts/deposits/{paymentHash}`.
    async fn deposit_state(&self, payment_hash: &str) -> Result<DepositStatus, Box<dyn Error>> {
        let response = self
            .client
            .get(format!(
                "{}/accounts/deposits/{payment_hash}",
                self.facilitator
            ))
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// The signed read `GET /accounts/{network}/{account}`.
    async fn balance(&self) -> Result<AccountBalance, Box<dyn Error>> {
        let now = unix_now().as_secs();
        let response = self
            .client
            .get(format!(
                "{}/accounts/{}/{}",
                self.facilitator,
                self.network,
                self.key.account()
            ))
            .header(
                x402_lightning::v1::sign::ACCOUNT_SIGNATURE_HEADER,
                self.key.account_read_signature(self.network, now),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!(
                "the facilitator refused the account read ({}): {}",
                response.status(),
                response.text().await?
            )
            .into());
        }
        Ok(response.json().await?)
    }
}
