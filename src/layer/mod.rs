//! The payment layer: [`X402Layer`] puts a price on routes of any tower service (an axum
//! `Router` included) and lets a priced request through only once the facilitator has verified
//! its payment, and releases the response only once the payment is settled.
//!
//! Free routes and `OPTIONS` preflights go straight to the inner service, with no allocation
//! beyond the route match and no facilitator call. A priced request without a usable
//! `X-PAYMENT` gets a 402 with fresh requirements; a paid one is pre-checked (network, amount,
//! payee, expiry, reuse), verified, served and settled. Every refusal is a JSON response (see
//! the table in PROTOCOL.md), never an error of the service.
//!
//! ```
//! use axum::{Router, routing::get};
//! use x402_lightning::mock::MockFacilitator;
//! use x402_lightning::{HttpFacilitator, Network, Price, PriceTag, X402Layer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = MockFacilitator::start().await?; // or your facilitator's URL
//! let facilitator = HttpFacilitator::new(&mock.url())?;
//!
//! let payments = X402Layer::builder(facilitator, Network::Regtest)
//!     .route("GET /weather", Price::sats(10))
//!     .route(
//!         "GET /premium/*",
//!         PriceTag::fixed(Price::msat(250_000)).description("Premium content"),
//!     )
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "free" }))
//!     .route("/weather", get(|| async { "sunny" }))
//!     .layer(payments);
//!
//! use tower::ServiceExt as _;
//! let unpaid = http::Request::get("/weather").body(axum::body::Body::empty())?;
//! let response = app.oneshot(unpaid).await?;
//! assert_eq!(response.status(), http::StatusCode::PAYMENT_REQUIRED);
//! # Ok(())
//! # }
//! ```

mod body;
mod config;
mod flow;
mod future;
pub(crate) mod guard;
mod payment;
mod respond;
mod service;
mod support;

pub use self::body::X402Body;
pub use self::config::{ConfigError, DEFAULT_SETTLED_MEMORY, X402LayerBuilder};
pub use self::future::ResponseFuture;
#[cfg(feature = "axum")]
pub use self::payment::MissingPayment;
pub use self::payment::VerifiedPayment;
pub use self::service::{X402Layer, X402Service};
pub use self::support::SupportError;
