//! An x402 facilitator for the scheme `exact` on `lnbtc` (x402 version 2), as a service.
//!
//! - `POST /settle` runs upstream's ordered validation ([`x402_lightning::lnbtc::settle`]) on
//!   the proof it is given, then atomically records `network:payment_hash` in a durable
//!   [replay store](store) shared by every instance: one proof, one success.
//! - `POST /requirements` mints an invoice through the configured [Lightning node](node), bound
//!   to the request hash it is given (the wire contract, `x402_lightning::protocol`), and checks it before handing it out.
//! - `GET /supported`, `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! The binary reads its [`Config`] from the environment; [`serve`] runs the service on a bound
//! listener until a shutdown signal, and is what the tests start.

pub mod config;
pub mod metrics;
pub mod node;
pub mod store;

mod app;

pub use crate::app::{Service, StartError, serve};
pub use crate::config::Config;
