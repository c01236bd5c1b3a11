//! An x402 facilitator for the scheme `exact` on `lnbtc` (x402 version 2), as a service.
//!
//! - `POST /settle` runs upstream's ordered validation ([`x402_lightning::lnbtc::settle`]) on
//!   the proof it is given, then atomically records `network:payment_hash` in a durable
//!   [replay store](store) shared by every instance: one proof, one success.
//! - `POST /requirements` mints an invoice through the configured [Lightning node](node), bound
//!   to the request hash it is given (the wire contract, `x402_lightning::protocol`), checks it,
//!   and records it in the [books] before handing it out, whatever the flows served.
//! - `GET /invoices/{paymentHash}` reports where such a recorded invoice stands, and its
//!   preimage once it is paid over Lightning (`x402_lightning::receiver::InvoiceStatus`, for the
//!   browser paywall); any other invoice of the node is a 404.
//! - `GET /supported`, `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! The binary reads its [`Config`] from the environment; [`serve`] runs the service on a bound
//! listener until a shutdown signal, and is what the tests start. Embedded in a program of
//! yours:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use x402_lightning_facilitator::{Config, Service, serve};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config {
//!     database_url: "sqlite://replay.db".into(),
//!     api_keys: vec!["a-long-random-key".into()],
//!     ..Config::default()
//! };
//! // Opens (and migrates) the replay store; the simulated node by default.
//! let service = Arc::new(Service::open(&config).await?);
//! let listener = tokio::net::TcpListener::bind(config.bind).await?;
//! serve(listener, service, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

pub mod books;
pub mod config;
pub mod metrics;
pub mod node;
pub mod store;

mod app;

pub use crate::app::{Service, StartError, serve};
pub use crate::config::Config;
