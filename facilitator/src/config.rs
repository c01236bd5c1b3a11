//! The service's configuration: environment variables (or the matching flags), documented in
//! `--help` and the README.

use std::net::SocketAddr;
use std::path::PathBuf;

use x402_lightning::Network;

/// The default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:4021";
/// The default replay store: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://x402-facilitator.db";
/// The default networks: testnet (the demo's default, an upstream network) and regtest (the
/// demo's and the tests' opt-in one).
pub const DEFAULT_NETWORKS: &str =
    "lnbtc:000000000933ea01ad0ee984209779ba,lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328";
/// The default LND REST address.
pub const DEFAULT_LND_URL: &str = "https://127.0.0.1:8080";
/// The largest clock-skew allowance accepted, in seconds. Every instance keeps a settled proof
/// until `invoice_end + MAX_SKEW_SECONDS + 1 h`, so instances sharing a store with different
/// skews (up to this one) never purge a key another instance could still accept.
pub const MAX_SKEW_SECONDS: u64 = 600;

/// The default flows: both.
pub const DEFAULT_FLOWS: &str = "v1,lnbtc";

/// A payment flow the service serves (`X402_FACILITATOR_FLOWS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flow {
    /// The seed flow (x402 version 1): prepaid accounts, signed authorizations, `/verify`,
    /// deposits and withdrawals.
    V1,
    /// `exact` on `lnbtc` (x402 version 2): preimage proofs settled upfront.
    Lnbtc,
}

/// Which Lightning node mints the invoices of `POST /requirements`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeKind {
    /// A key in memory that signs invoices and keeps their preimages; `POST /pay` pays them.
    /// For the demo and tests: it receives no real payment.
    #[default]
    Simulated,
    /// An LND node over its REST API (see `node::lnd` for the macaroon's permissions).
    Lnd,
}

/// The configuration of the facilitator service.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "x402-lightning-facilitator",
    version,
    about = "An x402 facilitator for `exact` on Lightning: the seed flow (x402 v1) from prepaid \
             accounts, and `exact` on `lnbtc` (x402 v2) preimage proofs, settled once against a \
             durable store (SQLite or PostgreSQL), with invoices minted and withdrawals paid by a \
             Lightning node.",
    after_help = "Routes: POST /requirements, GET /invoices/{paymentHash}, POST /verify and \
                  /settle (bearer API key when keys are set), GET /supported, GET /healthz, GET \
                  /metrics; accounts (seed flow): POST /accounts/deposits, GET \
                  /accounts/deposits/{paymentHash}, GET /accounts/{network}/{account} (signed), \
                  POST /accounts/withdrawals, GET \
                  /accounts/{network}/{account}/withdrawals/{paymentHash} (signed); POST /pay and \
                  /pay/external with the simulated node. Every option can also be given as its \
                  environment variable."
)]
pub struct Config {
    /// The address to listen on.
    #[arg(long, env = "X402_FACILITATOR_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// The replay store: `sqlite://PATH` (a file, created if missing) or `postgres://…` (for
    /// several instances sharing one database).
    #[arg(long, env = "X402_FACILITATOR_DATABASE_URL", default_value = DEFAULT_DATABASE_URL,
          hide_env_values = true)]
    pub database_url: String,

    /// The flows served, comma-separated: `v1` (the seed flow, with prepaid accounts) and
    /// `lnbtc`.
    #[arg(long, env = "X402_FACILITATOR_FLOWS", default_value = DEFAULT_FLOWS,
          value_delimiter = ',', value_enum)]
    pub flows: Vec<Flow>,

    /// The networks served, comma-separated, in either id form: `lnbtc:` ids (mainnet
    /// `lnbtc:000000000019d6689c085ae165831e93`, testnet `lnbtc:000000000933ea01ad0ee984209779ba`,
    /// signet `lnbtc:00000008819873e925422c1ff0f99f7c`, regtest
    /// `lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328`) or x402 v1 names (`lightning`,
    /// `lightning-testnet`, `lightning-signet`, `lightning-regtest`).
    #[arg(long, env = "X402_FACILITATOR_NETWORKS", default_value = DEFAULT_NETWORKS,
          value_delimiter = ',', value_parser = parse_network)]
    pub networks: Vec<Network>,

    /// The clock-skew allowance, in seconds (at most 600).
    #[arg(long, env = "X402_FACILITATOR_SKEW_SECONDS", default_value_t = 60)]
    pub skew_seconds: u64,

    /// Bearer API keys, comma-separated; when set, `/requirements`, `/verify` and `/settle` require
    /// `Authorization: Bearer <one of them>`. Without keys, anyone who reaches the port may
    /// settle and mint.
    #[arg(
        long,
        env = "X402_FACILITATOR_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// The Lightning node that mints invoices.
    #[arg(long, env = "X402_FACILITATOR_NODE", value_enum, default_value_t = NodeKind::Simulated)]
    pub node: NodeKind,

    /// The simulated node's secret key (64 hex characters); a random key by default. Instances
    /// sharing a store must share the key (they are one receiver).
    #[arg(long, env = "X402_FACILITATOR_NODE_KEY", hide_env_values = true)]
    pub node_key: Option<String>,

    /// LND's REST address.
    #[arg(long, env = "X402_FACILITATOR_LND_URL", default_value = DEFAULT_LND_URL)]
    pub lnd_url: String,

    /// The path of an LND macaroon with `info:read`, `invoices:read`, `invoices:write`,
    /// `offchain:read` and `offchain:write` (`lncli bakemacaroon …`; `invoice.macaroon` lacks
    /// `info:read` and cannot pay withdrawals).
    #[arg(long, env = "X402_FACILITATOR_LND_MACAROON")]
    pub lnd_macaroon: Option<PathBuf>,

    /// The path of LND's TLS certificate (`tls.cert`), trusted for the REST connection.
    #[arg(long, env = "X402_FACILITATOR_LND_TLS_CERT")]
    pub lnd_tls_cert: Option<PathBuf>,

    /// How long a deposit invoice can be paid, in seconds.
    #[arg(
        long,
        env = "X402_FACILITATOR_DEPOSIT_EXPIRY_SECONDS",
        default_value_t = 3600
    )]
    pub deposit_expiry_seconds: u64,

    /// How long `POST /accounts/withdrawals` waits for the node to decide before answering 202
    /// `pending`, in milliseconds.
    #[arg(
        long,
        env = "X402_FACILITATOR_WITHDRAWAL_WAIT_MS",
        default_value_t = 5_000
    )]
    pub withdrawal_wait_ms: u64,

    /// The timeout of each call to the Lightning node, in milliseconds.
    #[arg(
        long,
        env = "X402_FACILITATOR_NODE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub node_timeout_ms: u64,

    /// The largest request body accepted, in bytes.
    #[arg(long, env = "X402_FACILITATOR_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// How often expired replay entries are purged, in seconds.
    #[arg(
        long,
        env = "X402_FACILITATOR_PURGE_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub purge_interval_seconds: u64,

    /// After SIGINT or SIGTERM, how long in-flight requests may take before the service exits
    /// anyway, in seconds.
    #[arg(
        long,
        env = "X402_FACILITATOR_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 30
    )]
    pub shutdown_grace_seconds: u64,

    /// Pins the clock to this Unix time, in seconds (for conformance runs only: the upstream
    /// vectors use mainnet ids at a fixed time). Logged at start and with every settle; a
    /// pinned instance never purges the store.
    #[arg(long, env = "X402_FACILITATOR_TEST_NOW")]
    pub test_now: Option<u64>,
}

impl Default for Config {
    /// The defaults of `--help`, ignoring the environment.
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 4021)),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            flows: vec![Flow::V1, Flow::Lnbtc],
            deposit_expiry_seconds: 3600,
            withdrawal_wait_ms: 5_000,
            networks: vec![Network::Testnet, Network::Regtest],
            skew_seconds: x402_lightning::lnbtc::DEFAULT_SKEW_SECS,
            api_keys: Vec::new(),
            node: NodeKind::Simulated,
            node_key: None,
            lnd_url: DEFAULT_LND_URL.to_owned(),
            lnd_macaroon: None,
            lnd_tls_cert: None,
            node_timeout_ms: 10_000,
            max_body_bytes: 64 * 1024,
            purge_interval_seconds: 300,
            shutdown_grace_seconds: 30,
            test_now: None,
        }
    }
}

/// Parses one network id, in either form (`lnbtc:…` or an x402 v1 name).
fn parse_network(text: &str) -> Result<Network, String> {
    let text = text.trim();
    x402_lightning::v1::verify::parse_network_id(text).ok_or_else(|| {
        format!(
            "`{text}` is not a network this service knows ({}, or {})",
            Network::ALL.map(Network::lnbtc_id).join(", "),
            Network::ALL.map(Network::as_str).join(", ")
        )
    })
}

impl Config {
    /// Checks what clap cannot: the settings that make no sense together.
    ///
    /// # Errors
    /// The setting and why, as a sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.flows.is_empty() {
            return Err("X402_FACILITATOR_FLOWS names no flow: v1, lnbtc or both".into());
        }
        if !(60..=7 * 86_400).contains(&self.deposit_expiry_seconds) {
            return Err(
                "X402_FACILITATOR_DEPOSIT_EXPIRY_SECONDS must be 60 to 604800 (a week)".into(),
            );
        }
        if self.networks.is_empty() {
            return Err("X402_FACILITATOR_NETWORKS names no network".into());
        }
        if self.skew_seconds > MAX_SKEW_SECONDS {
            return Err(format!(
                "X402_FACILITATOR_SKEW_SECONDS is {}: at most {MAX_SKEW_SECONDS}",
                self.skew_seconds
            ));
        }
        if self.max_body_bytes == 0 {
            return Err("X402_FACILITATOR_MAX_BODY_BYTES must be positive".into());
        }
        if self.purge_interval_seconds == 0 {
            return Err("X402_FACILITATOR_PURGE_INTERVAL_SECONDS must be positive".into());
        }
        if self.api_keys.iter().any(|key| key.trim().is_empty()) {
            return Err(
                "X402_FACILITATOR_API_KEYS holds an empty key: list keys separated by commas, \
                 or leave the variable unset for an open service"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let parsed = Config::try_parse_from(["x402-lightning-facilitator"]);
        // The environment of the test run may set variables; only compare when it does not.
        if std::env::vars().any(|(name, _)| name.starts_with("X402_FACILITATOR_")) {
            return;
        }
        let parsed = parsed.expect("defaults parse");
        let default = Config::default();
        assert_eq!(parsed.bind, default.bind);
        assert_eq!(parsed.database_url, default.database_url);
        assert_eq!(parsed.networks, default.networks);
        assert_eq!(parsed.skew_seconds, default.skew_seconds);
        assert_eq!(parsed.node, default.node);
        assert_eq!(parsed.node_timeout_ms, default.node_timeout_ms);
        assert_eq!(parsed.max_body_bytes, default.max_body_bytes);
        assert_eq!(
            parsed.purge_interval_seconds,
            default.purge_interval_seconds
        );
    }

    #[test]
    fn networks_are_a_comma_separated_list_of_lnbtc_ids() {
        let parsed = Config::try_parse_from([
            "x402-lightning-facilitator",
            "--networks",
            "lnbtc:000000000019d6689c085ae165831e93,lnbtc:000000000933ea01ad0ee984209779ba",
        ])
        .expect("two ids parse");
        assert_eq!(parsed.networks, Network::LNBTC_UPSTREAM.to_vec());
        let either = Config::try_parse_from([
            "x402-lightning-facilitator",
            "--networks",
            "lightning,lnbtc:000000000933ea01ad0ee984209779ba",
        ])
        .expect("either id form parses");
        assert_eq!(either.networks, Network::LNBTC_UPSTREAM.to_vec());
        let refused = Config::try_parse_from([
            "x402-lightning-facilitator",
            "--networks",
            "lightning-mainnet",
        ]);
        assert!(refused.is_err(), "not a network");
    }
}
