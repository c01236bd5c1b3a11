//! Pays the demo with the paying client (`x402_lightning::client`, feature `client`): the lnbtc
//! flow by default (the simulated node's `/pay` is the wallet), the seed flow with `--flow v1`
//! (an account at the facilitator, funded first by a deposit).
//!
//! ```text
//! cargo run --example demo                                    # in one terminal
//! cargo run --example pay                                     # GET /weather, lnbtc
//! cargo run --example pay -- --flow v1                        # GET /weather, seed flow
//! cargo run --example pay -- /ai/infer '{"prompt":"hello"}'   # POST a JSON body
//! ```
//!
//! Environment: `X402_DEMO_URL` (default `http://127.0.0.1:3000`), `X402_FACILITATOR_URL` (the
//! demo's embedded facilitator service, `http://127.0.0.1:4021`: its simulated node pays, and it
//! holds the seed flow's account), `X402_PAY_URL` (the wallet's `/pay`, default the
//! facilitator's), `X402_WALLET_KEY` (the account key, default the public demo key),
//! `X402_NETWORK` (a network to pay on besides mainnet and testnet). The CLI
//! (`cargo run -p x402-lightning-cli -- --help`) does all this and more.

use std::error::Error;

use x402_lightning::client::wallet::{SimWallet, Wallet as _};
use x402_lightning::client::{Account, Budget, Payer, Receipt};
use x402_lightning::mock::DEMO_WALLET_SECRET;
use x402_lightning::v1::AccountKey;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let v1 = match args.iter().position(|arg| arg == "--flow") {
        Some(at) => args.drain(at..(at + 2).min(args.len())).nth(1).as_deref() == Some("v1"),
        None => false,
    };
    let url = format!(
        "{}{}",
        env("X402_DEMO_URL", "http://127.0.0.1:3000").trim_end_matches('/'),
        args.first().map_or("/weather", String::as_str)
    );
    let facilitator = env("X402_FACILITATOR_URL", "http://127.0.0.1:4021");
    let wallet = SimWallet::new(&env("X402_PAY_URL", &format!("{facilitator}/pay")))?;

    let mut payer = Payer::builder().budget(Budget::default().max_per_payment_msat(5_000_000));
    if let Ok(network) = std::env::var("X402_NETWORK") {
        payer = payer.allow_network(network.parse()?);
    }
    payer = if v1 {
        let key = AccountKey::from_secret_hex(&env("X402_WALLET_KEY", DEMO_WALLET_SECRET))?;
        let account = Account::new(key, &facilitator)?;
        let network = std::env::var("X402_NETWORK").unwrap_or_else(|_| "lightning-testnet".into());
        // Fund the account: a deposit invoice of the facilitator's node, paid over Lightning.
        let deposit = account.deposit(&network, 100_000).await?;
        wallet.pay(&deposit.invoice, 1_000).await?;
        let credited = account.deposit_status(&deposit.payment_hash).await?;
        println!(
            "deposited 100000 msat to {}: {:?}",
            account.id(),
            credited.state
        );
        payer.account(account)
    } else {
        payer.wallet(wallet)
    };

    // No redirects: a paid request's proof must not follow one to another URL.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let client = payer.build()?.client(http);
    let request = match args.get(1) {
        Some(body) => client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone()),
        None => client.get(&url),
    };
    let response = request.send().await?;
    if let Some(receipt) = response.extensions().get::<Receipt>() {
        println!(
            "paid {} msat (+{} msat fee) through {} on {}, payment hash {}",
            receipt.amount_msat,
            receipt.fee_msat,
            receipt.flow,
            receipt.network,
            receipt.payment_hash
        );
    }
    let status = response.status();
    println!("{status} {}", response.text().await?);
    if !status.is_success() {
        return Err(format!("the demo answered {status}").into());
    }
    Ok(())
}
