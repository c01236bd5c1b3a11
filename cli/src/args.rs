//! The command line: every option with its environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::amount::parse_msat;

/// Pay priced HTTP routes (x402, HTTP 402 Payment Required) in bitcoin over Lightning.
#[derive(Debug, Parser)]
#[command(name = "x402-lightning", version, after_help = crate::exit::TABLE)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch URL, paying its 402 within the budget: the body on stdout, the receipt on stderr.
    #[command(after_help = crate::exit::TABLE)]
    Pay(Box<PayArgs>),
    /// Deposit to the seed flow's account: ask the facilitator for a deposit invoice and pay it
    /// with --wallet (or print it with --wallet none).
    #[command(after_help = crate::exit::TABLE)]
    Deposit(DepositArgs),
    /// Show the seed flow's account balance (a signed read).
    #[command(after_help = crate::exit::TABLE)]
    Balance(BalanceArgs),
    /// Withdraw from the seed flow's account: the facilitator pays INVOICE (of another node).
    #[command(after_help = crate::exit::TABLE)]
    Withdraw(WithdrawArgs),
    /// Make a new account key for the seed flow: its secret (64 hex) on stdout, for
    /// X402_WALLET_KEY, and its account (the public key) on stderr.
    NewKey,
}

/// What pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WalletKind {
    /// LND's REST API (--lnd-url, --lnd-macaroon, --lnd-tls-cert).
    Lnd,
    /// Nostr Wallet Connect (--nwc-uri).
    Nwc,
    /// The simulated node's /pay (--sim-url): the demo's, no real money.
    Sim,
    /// The seed flow: the account key signs, the facilitator pays from the prepaid account.
    Account,
    /// Nothing (deposit only: print the invoice).
    None,
}

#[derive(Debug, Args)]
pub struct PayArgs {
    /// The URL to fetch.
    pub url: String,
    /// The method (default GET, or POST with --data).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The request body; `@FILE` reads a file, `@-` stdin.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "DATA",
        conflicts_with = "data_binary"
    )]
    pub data: Option<String>,
    /// The request body as bytes, unchanged; `@FILE` reads a file, `@-` stdin.
    #[arg(long = "data-binary", value_name = "DATA")]
    pub data_binary: Option<String>,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Include the response's status line and headers in the output.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
    /// Show the requests, the offer and the payment on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Show the offer and what would be paid, and pay nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    #[command(flatten)]
    pub budget: BudgetArgs,
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub account: AccountArgs,
}

#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// The most one payment may cost (the invoice amount), e.g. 20sat or 20000msat.
    #[arg(long = "max-cost", env = "X402_MAX_COST", value_name = "AMOUNT", default_value = "1000sat", value_parser = parse_msat)]
    pub max_cost_msat: u64,
    /// The most a payment's Lightning routing may cost (default: 1% of the amount, at least
    /// 1sat).
    #[arg(long = "max-fee", env = "X402_MAX_FEE", value_name = "AMOUNT", value_parser = parse_msat)]
    pub max_fee_msat: Option<u64>,
    /// Only these origins may charge (`https://host[:port]`; repeatable, or comma-separated in
    /// the environment).
    #[arg(
        long = "allow-origin",
        env = "X402_ALLOW_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WalletArgs {
    /// What pays: lnd, nwc, sim or account (the seed flow).
    #[arg(long = "wallet", env = "X402_WALLET", value_enum)]
    pub wallet: Option<WalletKind>,
    /// A network to pay on besides mainnet and testnet: lightning-signet or lightning-regtest
    /// (or its `lnbtc:` id; repeatable, or comma-separated in the environment).
    #[arg(
        long = "network",
        env = "X402_NETWORK",
        value_name = "NETWORK",
        value_delimiter = ','
    )]
    pub networks: Vec<String>,
    /// --wallet sim: the simulated node (its /pay is called).
    #[arg(
        long = "sim-url",
        env = "X402_WALLET_SIM_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:4021"
    )]
    pub sim_url: String,
    /// --wallet lnd: LND's REST URL, e.g. https://127.0.0.1:8080.
    #[arg(long = "lnd-url", env = "X402_LND_URL", value_name = "URL")]
    pub lnd_url: Option<String>,
    /// --wallet lnd: a macaroon file that may pay (offchain:read, offchain:write).
    #[arg(long = "lnd-macaroon", env = "X402_LND_MACAROON", value_name = "FILE")]
    pub lnd_macaroon: Option<PathBuf>,
    /// --wallet lnd: LND's tls.cert, pinned (the only certificate trusted).
    #[arg(long = "lnd-tls-cert", env = "X402_LND_TLS_CERT", value_name = "FILE")]
    pub lnd_tls_cert: Option<PathBuf>,
    /// --wallet nwc: the wallet's connection URI, nostr+walletconnect://… (a secret).
    #[arg(
        long = "nwc-uri",
        env = "X402_NWC_URI",
        value_name = "URI",
        hide_env_values = true
    )]
    pub nwc_uri: Option<String>,
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    /// The seed flow's account key, 64 hex (a secret).
    #[arg(
        long = "account-key",
        env = "X402_WALLET_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub account_key: Option<String>,
    /// The facilitator service holding the account (the seed flow: --wallet account, and the
    /// account commands).
    #[arg(
        long = "facilitator",
        env = "X402_FACILITATOR_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:4021"
    )]
    pub facilitator: String,
}

/// An account on one network: what `deposit`, `balance` and `withdraw` act on.
#[derive(Debug, Args)]
pub struct AccountOnNetwork {
    /// The account's network (either id form).
    #[arg(
        long = "account-network",
        env = "X402_ACCOUNT_NETWORK",
        value_name = "NETWORK",
        default_value = "lightning-testnet"
    )]
    pub network: String,
    #[command(flatten)]
    pub account: AccountArgs,
}

#[derive(Debug, Args)]
pub struct DepositArgs {
    /// How much, e.g. 100sat or 100000msat.
    #[arg(value_name = "AMOUNT", value_parser = parse_msat)]
    pub amount_msat: u64,
    #[command(flatten)]
    pub at: AccountOnNetwork,
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// The most the deposit's Lightning routing may cost (default: 1% of the amount, at least
    /// 1sat).
    #[arg(long = "max-fee", env = "X402_MAX_FEE", value_name = "AMOUNT", value_parser = parse_msat)]
    pub max_fee_msat: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    #[command(flatten)]
    pub at: AccountOnNetwork,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// The BOLT11 invoice (of another node) to pay from the account.
    pub invoice: String,
    /// The most the routing may cost, e.g. 10sat.
    #[arg(long = "max-fee", env = "X402_MAX_FEE", value_name = "AMOUNT", value_parser = parse_msat)]
    pub max_fee_msat: u64,
    #[command(flatten)]
    pub at: AccountOnNetwork,
}
