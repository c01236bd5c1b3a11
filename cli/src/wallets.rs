//! The wallet and the account the options name.

use std::sync::Arc;

use x402_lightning::Network;
use x402_lightning::client::wallet::{LndWallet, LndWalletConfig, NwcWallet, SimWallet, Wallet};
use x402_lightning::client::{Account, Budget, Payer, PayerBuilder};
use x402_lightning::v1::AccountKey;

use crate::Failure;
use crate::args::{AccountArgs, BudgetArgs, WalletArgs, WalletKind};
use crate::exit;

/// The Lightning wallet of `--wallet` (lnd, nwc, sim).
pub fn lightning_wallet(args: &WalletArgs) -> Result<Arc<dyn Wallet>, Failure> {
    let usage = |message: String| Failure::new(exit::USAGE, message);
    match args.wallet {
        Some(WalletKind::Sim) => {
            // The simulated node's base URL, or its `/pay` itself.
            let base = args.sim_url.trim_end_matches('/');
            let url = if base.ends_with("/pay") {
                base.to_owned()
            } else {
                format!("{base}/pay")
            };
            let wallet = SimWallet::new(&url)
                .map_err(|_| usage(format!("--sim-url: not an http(s) URL: {:?}", args.sim_url)))?;
            Ok(Arc::new(wallet))
        }
        Some(WalletKind::Lnd) => lnd_wallet(args),
        Some(WalletKind::Nwc) => nwc_wallet(args),
        Some(WalletKind::Account) | Some(WalletKind::None) | None => Err(usage(
            "choose a Lightning wallet: --wallet lnd, nwc or sim (or X402_WALLET)".into(),
        )),
    }
}

fn lnd_wallet(args: &WalletArgs) -> Result<Arc<dyn Wallet>, Failure> {
    let usage = |message: String| Failure::new(exit::USAGE, message);
    let url = args
        .lnd_url
        .as_deref()
        .ok_or_else(|| usage("--wallet lnd needs --lnd-url (or X402_LND_URL)".into()))?;
    let macaroon = args
        .lnd_macaroon
        .as_deref()
        .ok_or_else(|| usage("--wallet lnd needs --lnd-macaroon (or X402_LND_MACAROON)".into()))?;
    let config = LndWalletConfig::from_files(url, macaroon, args.lnd_tls_cert.as_deref())
        .map_err(|err| usage(format!("--wallet lnd: {err}")))?;
    let wallet = LndWallet::new(config).map_err(|err| usage(format!("--wallet lnd: {err}")))?;
    Ok(Arc::new(wallet))
}

fn nwc_wallet(args: &WalletArgs) -> Result<Arc<dyn Wallet>, Failure> {
    let usage = |message: String| Failure::new(exit::USAGE, message);
    let uri = args
        .nwc_uri
        .as_deref()
        .ok_or_else(|| usage("--wallet nwc needs --nwc-uri (or X402_NWC_URI)".into()))?;
    // The error names what is wrong with the URI, never its secret.
    let wallet = NwcWallet::parse(uri.trim()).map_err(|err| usage(format!("--nwc-uri: {err}")))?;
    Ok(Arc::new(wallet))
}

/// The seed flow's account of `--account-key` at `--facilitator`.
pub fn account(args: &AccountArgs) -> Result<Account, Failure> {
    let usage = |message: String| Failure::new(exit::USAGE, message);
    let secret = args.account_key.as_deref().ok_or_else(|| {
        usage(
            "the seed flow needs an account key: --account-key or X402_WALLET_KEY (64 hex)".into(),
        )
    })?;
    let key = AccountKey::from_secret_hex(secret.trim())
        .map_err(|err| usage(format!("--account-key: {err}")))?;
    Account::new(key, &args.facilitator).map_err(|err| usage(format!("--facilitator: {err}")))
}

/// The payer of `pay`: its wallet or account, the extra networks, the budget.
pub fn payer(
    wallet: &WalletArgs,
    account_args: &AccountArgs,
    budget: &BudgetArgs,
) -> Result<PayerBuilder, Failure> {
    let usage = |message: String| Failure::new(exit::USAGE, message);
    let mut builder = Payer::builder();
    builder = match wallet.wallet {
        Some(WalletKind::Account) => builder.account(account(account_args)?),
        Some(WalletKind::None) => {
            return Err(usage(
                "--wallet none cannot pay: choose lnd, nwc, sim or account".into(),
            ));
        }
        _ => builder.shared_wallet(lightning_wallet(wallet)?),
    };
    for name in &wallet.networks {
        let network = parse_network(name).map_err(|err| usage(format!("--network: {err}")))?;
        builder = builder.allow_network(network);
    }
    let mut limits = Budget::default().max_per_payment_msat(budget.max_cost_msat);
    if let Some(max_fee_msat) = budget.max_fee_msat {
        limits = limits.max_fee_msat(max_fee_msat);
    }
    for origin in &budget.allow_origins {
        limits = limits
            .allow_origin(origin.trim())
            .map_err(|err| usage(format!("--allow-origin: {err}")))?;
    }
    Ok(builder.budget(limits))
}

/// A network in either id form (`lightning-regtest` or `lnbtc:0f91…`).
pub fn parse_network(name: &str) -> Result<Network, String> {
    let name = name.trim();
    Network::from_lnbtc_id(name)
        .map(Ok)
        .unwrap_or_else(|| name.parse::<Network>().map_err(|err| err.to_string()))
}
