//! The HTTP service: state, router, authentication, bounded bodies and JSON errors. Each route's
//! handler lives in its own module: [`settle`], [`requirements`], [`pay`]; the small read-only
//! routes are here.

use std::future::{Future, IntoFuture as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::hashes::{Hash as _, sha256};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;
use x402_lightning::Network;
use x402_lightning::clock::{Clock, ManualClock, SystemClock};
use x402_lightning::lnbtc::settle::SettlePolicy;
use x402_lightning::lnbtc::types::{SCHEME_EXACT, X402_VERSION_2};

use crate::config::{Config, NodeKind};
use crate::metrics::Metrics;
use crate::node::{LightningNode, LndConfig, LndNode, SimulatedNode};
use crate::store::{self, ReplayStore, StoreError};

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

mod pay;
mod requirements;
mod settle;

/// The error of a request this service will not answer with a verdict: `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
    store: Arc<dyn ReplayStore>,
    node: Arc<dyn LightningNode>,
    /// The same node when it is simulated: it serves `POST /pay`.
    simulated: Option<Arc<SimulatedNode>>,
    policy: SettlePolicy,
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
        let store: Arc<dyn ReplayStore> = Arc::from(store::open(&config.database_url).await?);
        Self::new(store, node, simulated, config, clock)
    }

    /// A service on an open store and a simulated node, which also serves `POST /pay` (for
    /// tests and embedding). Of `config`, it reads what [`with_parts`](Self::with_parts) reads.
    ///
    /// # Errors
    /// [`StartError::Config`] when `config` fails [`Config::validate`].
    pub fn with_simulated_node(
        store: Arc<dyn ReplayStore>,
        node: Arc<SimulatedNode>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
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
        store: Arc<dyn ReplayStore>,
        node: Arc<dyn LightningNode>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        Self::new(store, node, None, config, clock)
    }

    fn new(
        store: Arc<dyn ReplayStore>,
        node: Arc<dyn LightningNode>,
        simulated: Option<Arc<SimulatedNode>>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        if simulated.is_some() && config.networks.contains(&Network::Bitcoin) {
            return Err(StartError::Config(
                "the simulated node cannot serve mainnet: its POST /pay hands out the preimage of \
                 every invoice, so content would be free; use X402_FACILITATOR_NODE=lnd"
                    .into(),
            ));
        }
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
    pub fn store(&self) -> &Arc<dyn ReplayStore> {
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

    /// The routes, for a server of the caller's. Without [`serve`], nothing purges the store:
    /// call [`purge`](Self::purge) from time to time.
    pub fn router(self: Arc<Self>) -> Router {
        let mut router = Router::new()
            .route("/settle", post(settle::settle))
            .route("/verify", post(settle::verify))
            .route("/requirements", post(requirements::requirements))
            .route("/supported", get(supported))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics));
        if self.simulated.is_some() {
            router = router.route("/pay", post(pay::pay));
        }
        router
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
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

/// Serves `service` on `listener` until `shutdown` completes, purging the replay store in the
/// background. Once `shutdown` completes, no connection is accepted and in-flight requests
/// finish; after the configured grace period (`shutdown_grace_seconds`) the remaining ones are
/// dropped. Then the store is closed.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if service.clock_pinned {
        tracing::warn!(
            now = service.now(),
            "the clock is PINNED (X402_FACILITATOR_TEST_NOW): for conformance runs only, never in production; no purge runs"
        );
    }
    if !service.requires_api_key() {
        tracing::warn!("no API key: anyone who reaches this port may settle and mint");
    }
    let purger = tokio::spawn(purge_forever(service.clone()));
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signalled = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let grace = service.shutdown_grace;
    let server = axum::serve(listener, service.clone().router())
        .with_graceful_shutdown(signalled)
        .into_future();
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "requests still in flight after the shutdown grace: dropped");
            Ok(())
        }
    };
    purger.abort();
    service.store.close().await;
    served
}

async fn purge_forever(service: Arc<Service>) {
    let mut interval = tokio::time::interval(service.purge_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match service.purge().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired replay entries"),
            Err(err) => tracing::error!(%err, "purging the replay store failed"),
        }
    }
}

/// A request that carried one of the configured API keys (or any request when none is set).
pub(crate) struct Authorized;

impl FromRequestParts<Arc<Service>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, ApiError> {
        if service.api_keys.is_empty() {
            return Ok(Self);
        }
        // One `Authorization` header, scheme `Bearer` (case-insensitive, RFC 9110).
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let given = match (values.next(), values.next()) {
            (Some(value), None) => value
                .to_str()
                .ok()
                .and_then(|value| value.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .unwrap_or_default(),
            _ => "",
        };
        // Every key is compared, in constant time and as digests, so timing tells nothing
        // about any of them.
        let given_digest = sha256::Hash::hash(given.as_bytes()).to_byte_array();
        let matched = service.api_keys.iter().fold(false, |matched, key| {
            matched | bool::from(key.ct_eq(&given_digest))
        });
        if matched && !given.is_empty() {
            Ok(Self)
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send `Authorization: Bearer <key>`",
            ))
        }
    }
}

/// A request body read whole, up to the configured limit (413 beyond).
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<Arc<Service>> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, service: &Arc<Service>) -> Result<Self, ApiError> {
        Bytes::from_request(request, service)
            .await
            .map(Body)
            .map_err(|rejection| {
                let status = rejection.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("request body over {} bytes", service.max_body_bytes)
                } else {
                    format!("cannot read the request body: {rejection}")
                };
                ApiError::new(status, message)
            })
    }
}

/// `GET /supported`: one x402 version 2 kind per network, with `extra.payTo` = the node's key
/// (the payee of every invoice `/requirements` mints) when the node can tell it.
async fn supported(State(service): State<Arc<Service>>) -> Response {
    let pay_to = match service.node.node_id().await {
        Ok(key) => Some(key.to_string()),
        Err(err) => {
            tracing::warn!(%err, "GET /supported without payTo: the node does not tell its key");
            None
        }
    };
    let kinds: Vec<_> = service
        .policy
        .networks
        .iter()
        .map(|network| {
            let mut kind = json!({
                "x402Version": X402_VERSION_2,
                "scheme": SCHEME_EXACT,
                "network": network.lnbtc_id(),
            });
            if let Some(pay_to) = &pay_to {
                kind["extra"] = json!({ "payTo": pay_to });
            }
            kind
        })
        .collect();
    Json(json!({ "kinds": kinds, "extensions": [], "signers": {} })).into_response()
}

/// `GET /healthz`: 200 when the replay store answers, 503 when it does not.
async fn healthz(State(service): State<Arc<Service>>) -> Response {
    let mut response = match service.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(err) => {
            tracing::error!(%err, "health check: the replay store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "unavailable", "error": "the replay store does not answer" }),
                ),
            )
                .into_response()
        }
    };
    no_store(&mut response);
    response
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
async fn metrics(State(service): State<Arc<Service>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route: POST /settle, POST /requirements, GET /supported, GET /healthz, GET /metrics \
         (and POST /pay with the simulated node)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
