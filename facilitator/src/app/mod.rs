//! The HTTP service: its state ([`Service`]), router and JSON errors. Each route's handler
//! lives in its own module ([`settle`], [`requirements`], [`invoices`], [`pay`], and [`status`]
//! for the read-only ones), the shared extractors in [`extract`], the server loop in
//! [`serve`](mod@serve).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::hashes::{Hash as _, sha256};
use serde_json::json;
use tower_http::timeout::RequestBodyTimeoutLayer;
use x402_lightning::clock::{Clock, ManualClock, SystemClock};
use x402_lightning::lnbtc::settle::SettlePolicy;

use crate::config::{Config, Flow, NodeKind};
use crate::metrics::Metrics;
use crate::node::{LightningNode, LndConfig, LndNode, SimulatedNode};
use crate::store::{self, Store, StoreError};

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

mod accounts;
mod extract;
mod invoices;
mod pay;
mod requirements;
mod seed;
mod serve;
mod settle;
mod status;

pub(crate) use self::extract::{Authorized, Body};
pub use self::serve::serve;

/// The error of a request this service will not answer with a verdict: `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: &'static str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            challenge: "Bearer",
        }
    }

    /// A 401 of a signed account route: the challenge names the signature header.
    pub(crate) fn unsigned(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            challenge: "X402-Account-Signature",
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        no_store(&mut response);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(self.challenge),
            );
        }
        response
    }
}

pub(crate) fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The flows the service serves (`X402_FACILITATOR_FLOWS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServedFlows {
    /// The seed flow: accounts, `/verify`, x402 v1 `/settle`, deposits, withdrawals.
    pub(crate) v1: bool,
    /// `exact` on `lnbtc`: x402 v2 `/settle`.
    pub(crate) lnbtc: bool,
}

/// The service failed to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The replay store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
}

/// The facilitator service: its state, shared by every request.
#[derive(Debug)]
pub struct Service {
    store: Arc<dyn Store>,
    node: Arc<dyn LightningNode>,
    /// The same node when it is simulated: it serves `POST /pay`.
    simulated: Option<Arc<SimulatedNode>>,
    flows: ServedFlows,
    policy: SettlePolicy,
    deposit_expiry_secs: u64,
    withdrawal_wait: Duration,
    /// How long a pending withdrawal stays unchanged before a resolver may take it for one
    /// whose sender is gone: a sender reaches the node within one node call's timeout.
    stale_withdrawal_secs: u64,
    clock: Arc<dyn Clock>,
    clock_pinned: bool,
    /// SHA-256 of each API key.
    api_keys: Vec<[u8; 32]>,
    max_body_bytes: usize,
    purge_interval: Duration,
    shutdown_grace: Duration,
    metrics: Metrics,
}

impl Service {
    /// Opens the replay store (running its migrations) and sets up the node `config` names.
    ///
    /// # Errors
    /// [`StartError::Store`] when the store cannot be opened or migrated;
    /// [`StartError::Config`] for an unusable setting (no network, a bad node key, an LND
    /// node without its macaroon, …).
    pub async fn open(config: &Config) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let clock: Arc<dyn Clock> = match config.test_now {
            Some(unix) => Arc::new(ManualClock::at_unix(Duration::from_secs(unix))),
            None => Arc::new(SystemClock),
        };
        let (node, simulated): (Arc<dyn LightningNode>, _) = match config.node {
            NodeKind::Simulated => {
                let node = match &config.node_key {
                    Some(hex) => SimulatedNode::from_secret_hex(hex.trim(), clock.clone())
                        .map_err(|err| {
                            StartError::Config(format!("X402_FACILITATOR_NODE_KEY: {err}"))
                        })?,
                    None => SimulatedNode::random(clock.clone()),
                };
                tracing::warn!(
                    "the node is SIMULATED: POST /pay hands out every invoice's preimage, so \
                     nothing is really paid (for the demo and tests)"
                );
                let node = Arc::new(node);
                (node.clone(), Some(node))
            }
            NodeKind::Lnd => {
                let macaroon = config.lnd_macaroon.as_deref().ok_or_else(|| {
                    StartError::Config(
                        "X402_FACILITATOR_NODE=lnd needs X402_FACILITATOR_LND_MACAROON".into(),
                    )
                })?;
                let lnd = LndConfig::from_files(
                    &config.lnd_url,
                    macaroon,
                    config.lnd_tls_cert.as_deref(),
                    Duration::from_millis(config.node_timeout_ms),
                )
                .and_then(LndNode::new)
                .map_err(|err| StartError::Config(err.to_string()))?;
                (Arc::new(lnd), None)
            }
        };
        let store: Arc<dyn Store> = Arc::from(store::open(&config.database_url).await?);
        Self::new(store, node, simulated, config, clock)
    }

    /// A service on an open store and a simulated node, which also serves `POST /pay` (for
    /// tests and embedding). Of `config`, it reads what [`with_parts`](Self::with_parts) reads.
    ///
    /// # Errors
    /// [`StartError::Config`] when `config` fails [`Config::validate`].
    pub fn with_simulated_node(
        store: Arc<dyn Store>,
        node: Arc<SimulatedNode>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        Self::new(store, node.clone(), Some(node), config, clock)
    }

    /// A service on an open store and node (for tests and embedding). Of `config`, it reads the
    /// networks, skew, API keys, body limit, purge interval, shutdown grace and whether the
    /// clock is pinned (`test_now`; `clock` is the time itself); the store, node and bind
    /// settings are the caller's.
    ///
    /// # Errors
    /// [`StartError::Config`] when `config` fails [`Config::validate`].
    pub fn with_parts(
        store: Arc<dyn Store>,
        node: Arc<dyn LightningNode>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        Self::new(store, node, None, config, clock)
    }

    /// The service of a validated `config`.
    fn new(
        store: Arc<dyn Store>,
        node: Arc<dyn LightningNode>,
        simulated: Option<Arc<SimulatedNode>>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        // Keys are compared as SHA-256 digests, so a comparison reveals nothing of their length.
        let api_keys = config
            .api_keys
            .iter()
            .map(|key| sha256::Hash::hash(key.trim().as_bytes()).to_byte_array())
            .collect();
        let mut networks: Vec<_> = Vec::with_capacity(config.networks.len());
        for network in &config.networks {
            if !networks.contains(network) {
                networks.push(*network);
            }
        }
        Ok(Self {
            store,
            node,
            simulated,
            flows: ServedFlows {
                v1: config.flows.contains(&Flow::V1),
                lnbtc: config.flows.contains(&Flow::Lnbtc),
            },
            deposit_expiry_secs: config.deposit_expiry_seconds,
            withdrawal_wait: Duration::from_millis(config.withdrawal_wait_ms),
            stale_withdrawal_secs: config.node_timeout_ms.div_ceil(1000).saturating_add(5),
            policy: SettlePolicy {
                networks,
                skew_secs: config.skew_seconds,
            },
            clock,
            clock_pinned: config.test_now.is_some(),
            api_keys,
            max_body_bytes: config.max_body_bytes,
            purge_interval: Duration::from_secs(config.purge_interval_seconds),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_seconds),
            metrics: Metrics::default(),
        })
    }

    /// The replay store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The current time, Unix seconds (pinned by `X402_FACILITATOR_TEST_NOW`).
    pub(crate) fn now(&self) -> u64 {
        self.clock.unix_now().as_secs()
    }

    /// Whether requests need an API key.
    pub fn requires_api_key(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// The routes, for a server of the caller's. Without [`serve`](fn@serve), nothing purges the store:
    /// call [`purge`](Self::purge) from time to time.
    pub fn router(self: Arc<Self>) -> Router {
        let mut router = Router::new()
            .route("/settle", post(settle::settle))
            .route("/verify", post(seed::verify))
            .route("/requirements", post(requirements::requirements))
            .route("/invoices/{payment_hash}", get(invoices::invoice_status))
            .route("/supported", get(status::supported))
            .route("/healthz", get(status::healthz))
            .route("/metrics", get(status::metrics));
        if self.flows.v1 {
            router = router
                .route("/accounts/deposits", post(accounts::deposit))
                .route(
                    "/accounts/deposits/{payment_hash}",
                    get(accounts::deposit_status),
                )
                .route("/accounts/withdrawals", post(accounts::withdraw))
                .route("/accounts/{network}/{account}", get(accounts::balance))
                .route(
                    "/accounts/{network}/{account}/withdrawals/{payment_hash}",
                    get(accounts::withdrawal_status),
                );
        }
        if self.simulated.is_some() {
            router = router
                .route("/pay", post(pay::pay))
                .route("/pay/external", post(pay::external))
                .route(
                    "/pay/external/{payment_hash}/{decision}",
                    post(pay::resolve_external),
                );
        }
        router
            .fallback(status::not_found)
            .method_not_allowed_fallback(status::method_not_allowed)
            .layer(DefaultBodyLimit::max(self.max_body_bytes))
            // A client that stalls mid-body gets its connection back as an error, not for ever.
            .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
            .with_state(self)
    }

    /// Removes the replay entries past their retention; returns how many. An instance whose
    /// clock is pinned never purges: its time says nothing about a shared store's live keys.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        if self.clock_pinned {
            return Ok(0);
        }
        let started = Instant::now();
        let purged = self.store.purge(self.now()).await;
        self.metrics.store_latency("purge", started.elapsed());
        let purged = purged?;
        self.metrics.purged(purged);
        Ok(purged)
    }
}
